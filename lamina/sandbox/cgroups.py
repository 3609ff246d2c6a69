"""Cgroup discovery and the per-sandbox cgroup contract shared by the v1 and v2 drivers.

A hierarchy (`CgroupHierarchy`) owns one parent cgroup, `<cgroup_parent>` relative to the
hierarchy root (v1: under every controller mount; v2: under the unified mount), and creates
one child cgroup per sandbox, `<cgroup_parent>/<label>`. `remove_stale()` kills and removes the
children it finds there unless a live process outside them (another Lamina using the same
parent) started them; give each concurrent Lamina its own parent anyway.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
PROBE_PREFIX = ".probe-"          # never matches LABEL_RE, so it cannot clash with a sandbox


MISSING = {  # what each missing controller means for a sandbox
    "memory": "no cgroup memory limit: memory_mb falls back to RLIMIT_DATA per process, "
              "no OOM detection, peak memory sampled from /proc",
    "cpu": "no cgroup CPU limit: cpu_millicores is ignored",
    "pids": "no cgroup pids limit: pids_max becomes RLIMIT_NPROC, which counts all processes "
            "of the sandbox uid together (and is not set when code runs as your own uid)",
    "freezer": "no cgroup freezer: freeze() sends SIGSTOP/SIGCONT to each process of the tree",
}


class CgroupError(RuntimeError):
    """A cgroup hierarchy or cgroup could not be set up; `details` are extra warnings."""

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class Cgroup(Protocol):
    """One sandbox's cgroup (a directory per v1 controller, or one v2 directory)."""

    name: str
    controllers: tuple[str, ...]

    def open_join_fds(self) -> list[int]:
        """O_CLOEXEC fds on cgroup.procs; writing b"0" to each moves the writer in."""
        ...

    def set_limits(self, memory_bytes: int, cpu_millicores: int, pids_max: int) -> None: ...

    def set_cpu(self, cpu_millicores: int) -> None:
        """Change the CPU share of a running cgroup (init runs unthrottled, invokes at the function's share)."""
        ...

    async def freeze(self) -> None: ...

    async def thaw(self) -> None: ...

    def peak_memory_bytes(self) -> int: ...

    def reset_peak_memory(self) -> None: ...

    def oom_killed(self) -> bool: ...

    def pids(self) -> list[int]: ...

    async def kill_all(self, spare: int | None = None) -> None:
        """SIGKILL every process in the cgroup but `spare` and wait (briefly) until they are gone.

        Sparing the caller's direct child lets it reap its own children (e.g. bwrap's pid 1)
        instead of orphaning them to an init that may never reap zombies."""
        ...

    async def remove(self) -> None:
        """rmdir the cgroup directories; idempotent."""
        ...


class CgroupHierarchy(Protocol):
    version: str                      # "v1" | "v2"
    controllers: tuple[str, ...]      # controllers actually usable, e.g. ("memory", "cpu", "pids", "freezer")
    warnings: tuple[str, ...]         # what is missing, in plain words
    memory_peak_exact: bool           # False when peak memory is only sampled

    def create(self, label: str) -> Cgroup: ...

    def remove_stale(self) -> list[str]: ...

    def remove_parent(self) -> None: ...


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    fstype: str
    super_options: tuple[str, ...]


# ---------------------------------------------------------------- discovery

def read_mounts(path: str = "/proc/self/mountinfo") -> list[Mount]:
    mounts: list[Mount] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            mount = _parse_mountinfo_line(line)
            if mount is not None:
                mounts.append(mount)
    return mounts


def _parse_mountinfo_line(line: str) -> Mount | None:
    left, sep, right = line.partition(" - ")
    if not sep:
        return None
    fields, tail = left.split(), right.split()
    if len(fields) < 5 or len(tail) < 3:
        return None
    mountpoint = fields[4].replace("\\040", " ")
    return Mount(mountpoint, tail[0], tuple(tail[2].split(",")))


def validate_parent(parent: str) -> str:
    parts = [p for p in parent.strip("/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"invalid cgroup parent {parent!r}: want a relative path like 'lamina'")
    return "/".join(parts)


def validate_label(label: str) -> str:
    if not LABEL_RE.match(label):
        raise ValueError(f"invalid sandbox label {label!r}: use 1-128 of [A-Za-z0-9_-]")
    return label


def detect_hierarchy(parent: str = "lamina") -> tuple[CgroupHierarchy | None, list[str]]:
    """Find a writable cgroup hierarchy; returns it (or None) and warnings about what is missing."""
    # Imported here: the drivers import the helpers of this module.
    from lamina.sandbox.cgroups_v1 import V1Hierarchy, v1_controller_mounts
    from lamina.sandbox.cgroups_v2 import V2Hierarchy, v2_root

    parent = validate_parent(parent)
    try:
        mounts = read_mounts()
    except OSError as e:
        return None, [f"cannot read /proc/self/mountinfo ({e}); no cgroup limits"]
    v1 = v1_controller_mounts(mounts)
    root2 = v2_root(mounts)
    try:
        if v1:
            hierarchy: CgroupHierarchy = V1Hierarchy(v1, parent)
        elif root2 is not None:
            hierarchy = V2Hierarchy(root2, parent)
        else:
            return None, ["no cgroup filesystem is mounted; no memory/CPU/pids limits and no freezer"]
    except CgroupError as e:
        return None, [str(e), *e.details]
    return hierarchy, list(hierarchy.warnings)


# ---------------------------------------------------------------- small file helpers

def read_text(path: str) -> str:
    """Raw fd reads: control files are read on every invoke, and open()'s text layer costs 10x more."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("ascii")
    finally:
        os.close(fd)


def write_text(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)


def try_write(path: str, value: str) -> bool:
    try:
        write_text(path, value)
        return True
    except OSError:
        return False


def read_keyed(path: str) -> dict[str, int]:
    """Parse 'key value' lines (memory.events, memory.oom_control, cgroup.events)."""
    out: dict[str, int] = {}
    try:
        text = read_text(path)
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_int(path: str, default: int = 0) -> int:
    try:
        return int(read_text(path).split()[0])
    except (OSError, ValueError, IndexError):
        return default


def read_pids(procs_file: str) -> list[int]:
    try:
        return [int(p) for p in read_text(procs_file).split()]
    except (OSError, ValueError):
        return []


def kill_pids(pids: list[int], spare: int | None = None) -> None:
    for pid in pids:
        if pid == spare:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def parent_pid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def live_owner(pids: list[int]) -> int | None:
    """A live process outside the cgroup that started it (e.g. another Lamina sharing the
    cgroup parent), or None when the cgroup is orphaned: every process's parent is inside it,
    is init (orphans are re-parented there), or is this very process."""
    inside = set(pids)
    for pid in pids:
        ppid = parent_pid(pid)
        if ppid not in inside and ppid not in (0, 1, os.getpid()):
            return ppid
    return None


def probe_mkdir(parent_dir: str) -> None:
    """Create and remove a throw-away child to prove `parent_dir` accepts new cgroups."""
    path = os.path.join(parent_dir, f"{PROBE_PREFIX}{os.getpid()}")
    os.mkdir(path)
    os.rmdir(path)


def cpu_quota_us(cpu_millicores: int, period_us: int) -> int:
    return max(1000, cpu_millicores * period_us // 1000)


def child_dirs(parent_dir: str) -> list[str]:
    try:
        names = os.listdir(parent_dir)
    except OSError:
        return []
    return [os.path.join(parent_dir, n) for n in names
            if LABEL_RE.match(n) or n.startswith(PROBE_PREFIX)
            if os.path.isdir(os.path.join(parent_dir, n))]


def unique_name(parent_dirs: list[str], label: str) -> str:
    """`label`, or `label-2`, `label-3`... when a cgroup of that name is still busy."""
    for n in range(1, 1000):
        name = label if n == 1 else f"{label}-{n}"
        if not any(os.path.exists(os.path.join(d, name)) for d in parent_dirs):
            return name
        if all(rmdir_quiet(os.path.join(d, name)) for d in parent_dirs):
            return name                   # an empty leftover: removed, reuse the name
    raise CgroupError(f"no free cgroup name for label {label!r}")


def rmdir_quiet(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


async def rmdir_retry(path: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {path}: {e}") from e
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def rmdir_retry_sync(path: str, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not rmdir_quiet(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate()` with a short back-off until true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)
    return True
