"""The dependency rules of docs/ARCHITECTURE.md, checked on the source's imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lamina"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "lamina":
            found.update(f"lamina.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("lamina")}


def modules(sub: str) -> list[Path]:
    base = PACKAGE / sub
    return sorted(base.rglob("*.py")) if base.is_dir() else [PACKAGE / f"{sub}.py"]


# (package, prefixes it may import from lamina)
RULES = [
    ("model", ("lamina.model",)),
    ("errors", ()),
    ("limits", ()),
    ("arn", ()),
    ("sandbox", ("lamina.sandbox",)),
    ("runtime_api", ("lamina.runtime_api", "lamina.limits")),
    ("store", ("lamina.store", "lamina.model")),
]


@pytest.mark.parametrize("package,allowed", RULES)
def test_low_layers_import_only_what_they_may(package: str, allowed: tuple[str, ...]) -> None:
    for path in modules(package):
        for name in imports_of(path):
            assert name.startswith(allowed), f"{path.relative_to(PACKAGE)} imports {name}"


def test_api_never_reaches_the_pool_placement_or_sandbox() -> None:
    for path in modules("api"):
        for name in imports_of(path):
            assert not name.startswith(("lamina.invoke.pool", "lamina.invoke.placement", "lamina.sandbox")), path


def test_events_reach_the_data_plane_only_through_the_router() -> None:
    for path in modules("events"):
        for name in imports_of(path):
            assert not name.startswith("lamina.invoke") or name == "lamina.invoke.router", path


def test_cli_is_an_http_client() -> None:
    # serve.py runs the server itself; doctor's offline fallback probes this host (sandbox.probe, catalog).
    allowed = ("lamina.cli", "lamina.settings", "lamina.app", "lamina.telemetry", "lamina.sandbox.probe",
               "lamina.runtimes.catalog")
    for path in modules("cli"):
        for name in imports_of(path):
            assert name.startswith(allowed), f"{path.name} imports {name}"


IN_SANDBOX = ("bootstrap", "zygote_child.py")   # code that runs inside a sandbox sets up its own environment


def test_only_settings_reads_the_environment() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py" or any(part in IN_SANDBOX for part in path.parts):
            continue
        assert "os.environ" not in path.read_text() and "getenv" not in path.read_text(), path
