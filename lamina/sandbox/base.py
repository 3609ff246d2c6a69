"""Process isolation contract: what a sandbox is asked to run and what it hands back.

This package knows nothing about Lambda: it runs an argv inside an isolated process tree
with a filesystem view, resource limits and a freezer, and reports what it used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol


@dataclass(frozen=True)
class Bind:
    """A host path made visible at `dest` inside the sandbox."""

    source: str
    dest: str
    read_only: bool = True


@dataclass(frozen=True)
class SandboxSpec:
    argv: tuple[str, ...]
    env: dict[str, str]
    binds: tuple[Bind, ...] = ()
    workdir: str = "/"
    tmp_size_mb: int = 512          # private, writable /tmp of this size
    memory_mb: int = 128            # hard memory limit; exceeding it kills the tree
    cpu_millicores: int = 1000      # CPU share, 1000 = one full core
    pids_max: int = 1024
    hostname: str = "sandbox"
    label: str = "sandbox"          # names the cgroup and log lines, [A-Za-z0-9_-]


@dataclass(frozen=True)
class IsolationReport:
    """What this host allows, as found by probing, for `lamina doctor` and the start banner."""

    backend: str                    # "bwrap" | "plain"
    cgroup_version: str             # "v1" | "v2" | "none"
    namespaces: tuple[str, ...]     # e.g. ("mount", "pid", "ipc", "uts", "user")
    limits: tuple[str, ...]         # e.g. ("memory", "cpu", "pids", "freezer") enforced by cgroups
    unprivileged_uid: int | None    # uid the code runs as, None when it runs as the caller
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def degraded(self) -> bool:
        return bool(self.warnings)


class SandboxProcess(Protocol):
    """A running sandbox: one isolated process tree."""

    @property
    def pid(self) -> int: ...

    @property
    def output_fd(self) -> int:
        """Non-blocking read end of a pipe carrying the tree's stdout and stderr, merged."""
        ...

    async def freeze(self) -> None:
        """Stop every process in the tree (no CPU) until thaw; a no-op where unsupported."""
        ...

    async def thaw(self) -> None: ...

    def set_cpu(self, cpu_millicores: int) -> None:
        """Change the tree's CPU share while it runs; a no-op where CPU is not limited."""
        ...

    async def kill(self) -> None:
        """Kill the whole tree and release its resources (cgroups, mounts); idempotent."""
        ...

    async def wait(self) -> int:
        """Wait for the main process to exit; returns its exit status (negative = signal)."""
        ...

    def returncode(self) -> int | None:
        """Exit status if the main process has exited, else None."""
        ...

    def peak_memory_bytes(self) -> int:
        """High-water mark of the tree's memory since start or the last reset."""
        ...

    def reset_peak_memory(self) -> None: ...

    def pids(self) -> list[int]:
        """Host pids of every process in the tree now."""
        ...

    def oom_killed(self) -> bool:
        """True once the memory limit has killed a process of the tree."""
        ...


class FreshStarts:
    """For sandboxes that start every process from scratch: nothing to warm up, nothing to stop."""

    async def prewarm(self, specs: Iterable[SandboxSpec]) -> list[str]:
        return []

    async def close(self) -> None:
        return None


class Sandbox(Protocol):
    """Starts isolated processes; one instance per host, built by the composition root."""

    report: IsolationReport

    async def start(self, spec: SandboxSpec) -> SandboxProcess: ...

    async def prewarm(self, specs: Iterable[SandboxSpec]) -> list[str]:
        """Get ready to start specs like these fast; returns a line per spec that cannot be (why)."""
        ...

    async def close(self) -> None:
        """Stop whatever the sandbox keeps running between starts."""
        ...
