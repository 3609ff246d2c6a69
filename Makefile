# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 9000

.PHONY: run test setup system bench clean

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

bench: setup system
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .lamina
