# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 9000

.PHONY: run test setup system bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

system:
	@scripts/install-system.sh

run: setup system
	@PORT=$(PORT) scripts/run.sh

test: setup system
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check lamina --select F,E,W,B
	$(VENV)/bin/mypy lamina

bench: setup system
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .lamina
