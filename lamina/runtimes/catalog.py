"""Which runtime ids exist, which Lamina runs, and which host interpreter serves each."""
from __future__ import annotations

import enum
import functools
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

# Every value of botocore's Runtime enum: anything else is not a runtime at all.
AWS_RUNTIMES: tuple[str, ...] = (
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x", "nodejs16.x",
    "nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x", "java8", "java8.al2", "java11", "java17", "java21",
    "java25", "python2.7", "python3.6", "python3.7", "python3.8", "python3.9", "python3.10", "python3.11",
    "python3.12", "python3.13", "python3.14", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1",
    "dotnet6", "dotnet8", "dotnet10", "nodejs4.3-edge", "go1.x", "ruby2.5", "ruby2.7", "ruby3.2", "ruby3.3",
    "ruby3.4", "ruby4.0", "provided", "provided.al2", "provided.al2023", "nodejs26.x", "python3.15",
    "java8.al2023", "java11.al2023", "java17.al2023", "custom",
)

# AWS blocks creating and updating functions on these.
DEPRECATED: frozenset[str] = frozenset({
    "nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x", "nodejs14.x", "nodejs16.x",
    "nodejs4.3-edge", "python2.7", "python3.6", "python3.7", "dotnetcore1.0", "dotnetcore2.0", "dotnetcore2.1",
    "dotnetcore3.1", "dotnet6", "go1.x", "ruby2.5", "ruby2.7", "java8", "provided",
})


class Kind(str, enum.Enum):
    PYTHON = "python"
    NODE = "node"
    PROVIDED = "provided"


@dataclass(frozen=True)
class RuntimeChoice:
    """How one runtime id runs on this host."""

    runtime: str
    kind: Kind
    prefix: Path | None        # interpreter install prefix, bound at /var/lang (None for provided)
    executable: str            # path inside the sandbox
    note: str = ""             # set when a fallback serves the id


def kind_of(runtime: str) -> Kind | None:
    if runtime.startswith("python3."):
        return Kind.PYTHON
    if runtime.startswith("nodejs") and runtime.endswith(".x"):
        return Kind.NODE
    if runtime in ("provided.al2", "provided.al2023"):
        return Kind.PROVIDED
    return None


class RuntimeCatalog:
    def __init__(self, pyenv_root: Path, node_binary: Path, python_fallback: str,
                 overrides: dict[str, str] | None = None) -> None:
        self._pyenv_root = pyenv_root
        self._node = node_binary
        self._fallback = python_fallback
        self._overrides = {k: Path(v) for k, v in (overrides or {}).items()}

    def runnable(self) -> list[str]:
        """Runtime ids Lamina accepts for new functions here."""
        return [r for r in AWS_RUNTIMES if r not in DEPRECATED and kind_of(r) is not None]

    def _python_prefix(self, version: str) -> Path | None:
        if f"python{version}" in self._overrides:
            return self._overrides[f"python{version}"]
        if not self._pyenv_root.is_dir():
            return None
        found = sorted(self._pyenv_root.glob(f"{version}.*"),
                       key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")])
        found = [p for p in found if (p / "bin" / f"python{version}").exists()]
        return found[-1] if found else None

    def resolve(self, runtime: str) -> RuntimeChoice | None:
        kind = kind_of(runtime)
        if kind is Kind.PYTHON:
            return self._resolve_python(runtime)
        if kind is Kind.NODE:
            return self._resolve_node(runtime)
        if kind is Kind.PROVIDED:
            return RuntimeChoice(runtime, kind, None, "/var/task/bootstrap")
        return None

    def _python(self, runtime: str, version: str) -> RuntimeChoice | None:
        prefix = self._python_prefix(version)
        if prefix is not None:
            return RuntimeChoice(runtime, Kind.PYTHON, prefix, f"/var/lang/bin/python{version}")
        for system in (Path("/usr/local/bin"), Path("/usr/bin")):   # visible in the sandbox as they are
            if (system / f"python{version}").exists():
                return RuntimeChoice(runtime, Kind.PYTHON, None, str(system / f"python{version}"))
        return None

    @functools.cached_property
    def _node_version(self) -> str:
        try:
            out = subprocess.run([str(self._node), "--version"], capture_output=True, text=True, timeout=10)
            return out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def _resolve_node(self, runtime: str) -> RuntimeChoice | None:
        if not self._node.exists():
            return None
        wanted = runtime.removeprefix("nodejs").removesuffix(".x")
        have = self._node_version.lstrip("v").split(".")[0]
        note = "" if wanted == have else f"{runtime} runs on the host's Node.js {self._node_version or 'unknown'}"
        return RuntimeChoice(runtime, Kind.NODE, None, str(self._node), note=note)

    def _resolve_python(self, runtime: str) -> RuntimeChoice | None:
        choice = self._python(runtime, runtime.removeprefix("python"))
        if choice is not None:
            return choice
        fallback = self._python(runtime, self._fallback.removeprefix("python"))
        if fallback is None:
            return None
        return replace(fallback, note=f"{runtime} is not installed; {self._fallback} runs it")
