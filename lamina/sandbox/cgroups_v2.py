"""cgroup v2 driver: one directory per sandbox in the unified hierarchy."""
from __future__ import annotations

import logging
import os
import time

from lamina.sandbox.cgroups import (
    MISSING,
    PROBE_PREFIX,
    CgroupError,
    Mount,
    child_dirs,
    cpu_quota_us,
    kill_pids,
    live_owner,
    read_int,
    read_keyed,
    read_pids,
    read_text,
    rmdir_quiet,
    rmdir_retry,
    rmdir_retry_sync,
    try_write,
    unique_name,
    validate_label,
    wait_until,
    write_text,
)

log = logging.getLogger(__name__)

V2_CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000


def v2_root(mounts: list[Mount]) -> str | None:
    """Mount point of a cgroup2 hierarchy that has controllers (not the empty hybrid one)."""
    for mount in mounts:
        if mount.fstype != "cgroup2":
            continue
        try:
            if read_text(os.path.join(mount.mountpoint, "cgroup.controllers")).split():
                return mount.mountpoint
        except OSError:
            continue
    return None


class V2Hierarchy:
    version = "v2"

    def __init__(self, root: str, parent: str) -> None:
        self._parent = os.path.join(root, parent)
        warnings: list[str] = []
        available = read_text(os.path.join(root, "cgroup.controllers")).split()
        wanted = [c for c in V2_CONTROLLERS if c in available]
        warnings += [f"{MISSING[c]} (not in {root}/cgroup.controllers)" for c in V2_CONTROLLERS
                     if c not in available]
        try:
            os.makedirs(self._parent, exist_ok=True)
        except OSError as e:
            raise CgroupError(
                f"no cgroup limits: cannot create {self._parent} ({e.strerror}); run as root or "
                f"pass a cgroup_parent inside a subtree delegated to uid {os.getuid()}") from e
        for level in self._levels(root, parent):
            wanted = self._enable(level, wanted, warnings)
        self._features = self._probe_features(warnings)
        freezer = ("freezer",) if "cgroup.freeze" in self._features else ()
        self.controllers = tuple(wanted) + freezer
        self.memory_peak_exact = "memory.peak" in self._features
        if "memory" in wanted and not self.memory_peak_exact:
            warnings.append("kernel lacks memory.peak (< 5.19): peak memory is only sampled")
        self.warnings = tuple(warnings)

    @staticmethod
    def _levels(root: str, parent: str) -> list[str]:
        parts = parent.split("/")
        return [os.path.join(root, *parts[:i]) for i in range(len(parts) + 1)]

    @staticmethod
    def _enable(level: str, wanted: list[str], warnings: list[str]) -> list[str]:
        control = os.path.join(level, "cgroup.subtree_control")
        enabled = read_text(control).split()
        kept = []
        for controller in wanted:
            if controller in enabled:
                kept.append(controller)
                continue
            try:
                write_text(control, f"+{controller}")
                kept.append(controller)
            except OSError as e:
                warnings.append(f"{MISSING[controller]} (cannot enable it in {control}: "
                                f"{e.strerror}; a cgroup with processes cannot delegate controllers)")
        return kept

    def _probe_features(self, warnings: list[str]) -> frozenset[str]:
        probe = os.path.join(self._parent, f"{PROBE_PREFIX}{os.getpid()}")
        try:
            os.mkdir(probe)
        except OSError as e:
            raise CgroupError(f"no cgroup limits: cannot create cgroups under {self._parent} "
                              f"({e.strerror})") from e
        try:
            files = frozenset(os.listdir(probe))
        finally:
            rmdir_quiet(probe)
        if "cgroup.freeze" not in files:
            warnings.append(f"{MISSING['freezer']} (kernel < 5.2)")
        return files

    def create(self, label: str) -> V2Cgroup:
        validate_label(label)
        name = unique_name([self._parent], label)
        path = os.path.join(self._parent, name)
        try:
            os.mkdir(path)
        except OSError as e:
            raise CgroupError(f"cannot create cgroup {path}: {e}") from e
        return V2Cgroup(name, path, self.controllers)

    def remove_stale(self) -> list[str]:
        return [os.path.basename(d) for d in child_dirs(self._parent) if _drain_sync(d)]

    def remove_parent(self) -> None:
        rmdir_quiet(self._parent)


def _drain_sync(path: str, timeout: float = 2.0) -> bool:
    """Kill everything in a stale cgroup, thaw it and remove it."""
    owner = live_owner(read_pids(os.path.join(path, "cgroup.procs")))
    if owner is not None:
        log.warning("cgroup %s is in use by live pid %d: left alone", path, owner)
        return False
    try_write(os.path.join(path, "cgroup.kill"), "1")
    deadline = time.monotonic() + timeout
    while True:
        pids = read_pids(os.path.join(path, "cgroup.procs"))
        kill_pids(pids)
        try_write(os.path.join(path, "cgroup.freeze"), "0")
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return rmdir_retry_sync(path, timeout=0.5)


class V2Cgroup:
    def __init__(self, name: str, path: str, controllers: tuple[str, ...]) -> None:
        self.name = name
        self.controllers = controllers
        self._path = path
        self._removed = False
        self._peak_fd, self._peak_resettable = self._open_peak()
        self._sampled_peak = 0
        self._sampling = self._peak_fd is None

    def _file(self, filename: str) -> str:
        return os.path.join(self._path, filename)

    def _open_peak(self) -> tuple[int | None, bool]:
        if "memory" not in self.controllers:
            return None, False
        for flags, resettable in ((os.O_RDWR, True), (os.O_RDONLY, False)):
            try:
                return os.open(self._file("memory.peak"), flags | os.O_CLOEXEC), resettable
            except OSError:
                continue
        return None, False

    def open_join_fds(self) -> list[int]:
        return [os.open(self._file("cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)]

    def set_limits(self, memory_bytes: int, cpu_millicores: int, pids_max: int) -> None:
        if "memory" in self.controllers:
            write_text(self._file("memory.max"), str(memory_bytes))
            try_write(self._file("memory.swap.max"), "0")
            try_write(self._file("memory.oom.group"), "1")   # an OOM kills the whole tree
        self.set_cpu(cpu_millicores)
        if "pids" in self.controllers:
            write_text(self._file("pids.max"), str(pids_max))

    def set_cpu(self, cpu_millicores: int) -> None:
        if "cpu" in self.controllers:
            quota = cpu_quota_us(cpu_millicores, CPU_PERIOD_US)
            write_text(self._file("cpu.max"), f"{quota} {CPU_PERIOD_US}")

    async def freeze(self) -> None:
        if "freezer" not in self.controllers:
            return
        write_text(self._file("cgroup.freeze"), "1")
        events = self._file("cgroup.events")
        if not await wait_until(lambda: read_keyed(events).get("frozen") == 1, timeout=2.0):
            raise CgroupError(f"cgroup {self.name} did not freeze within 2s")

    async def thaw(self) -> None:
        if "freezer" in self.controllers:
            write_text(self._file("cgroup.freeze"), "0")

    def _current(self) -> int:
        return read_int(self._file("memory.current"))

    def peak_memory_bytes(self) -> int:
        if "memory" not in self.controllers:
            return 0
        if self._sampling:
            self._sampled_peak = max(self._sampled_peak, self._current())
            return self._sampled_peak
        assert self._peak_fd is not None
        try:
            return int(os.pread(self._peak_fd, 64, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def reset_peak_memory(self) -> None:
        if self._peak_fd is not None and self._peak_resettable:
            try:
                os.write(self._peak_fd, b"reset\n")    # Linux >= 6.12: per-fd reset
                return
            except OSError:
                self._peak_resettable = False
        self._sampling = True
        self._sampled_peak = self._current()

    def oom_killed(self) -> bool:
        events = read_keyed(self._file("memory.events"))
        return events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0

    def pids(self) -> list[int]:
        return read_pids(self._file("cgroup.procs"))

    async def kill_all(self, spare: int | None = None) -> None:
        if spare is not None or not try_write(self._file("cgroup.kill"), "1"):   # Linux >= 5.14
            await self._kill_loop(spare)
        await wait_until(lambda: self._kill_remaining(spare), timeout=2.0)

    async def _kill_loop(self, spare: int | None) -> None:
        try:
            await self.freeze()
        except (OSError, CgroupError):
            pass
        kill_pids(self.pids(), spare)
        await self.thaw()

    def _kill_remaining(self, spare: int | None) -> bool:
        """Kill what is left; True once nothing but `spare` is left."""
        pids = [p for p in self.pids() if p != spare]
        kill_pids(pids)
        return not pids

    async def remove(self) -> None:
        if self._removed:
            return
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        await rmdir_retry(self._path)
        self._removed = True
