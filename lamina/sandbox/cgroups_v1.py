"""cgroup v1 driver: one directory per controller (memory, cpu, pids, freezer) per sandbox."""
from __future__ import annotations

import logging
import os
import time

from lamina.sandbox.cgroups import (
    MISSING,
    CgroupError,
    Mount,
    child_dirs,
    cpu_quota_us,
    kill_pids,
    live_owner,
    probe_mkdir,
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

V1_CONTROLLERS = ("memory", "cpu", "pids", "freezer")
CFS_PERIOD_US = 100_000


def v1_controller_mounts(mounts: list[Mount]) -> dict[str, str]:
    """controller -> mount point, for the controllers Lamina uses."""
    found: dict[str, str] = {}
    for mount in mounts:
        if mount.fstype != "cgroup":
            continue
        for controller in V1_CONTROLLERS:
            if controller in mount.super_options:
                found.setdefault(controller, mount.mountpoint)
    return found


def host_has_swap() -> bool:
    try:
        return len(read_text("/proc/swaps").splitlines()) > 1
    except OSError:
        return False


def _unique(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))


class V1Hierarchy:
    version = "v1"
    memory_peak_exact = True

    def __init__(self, mounts: dict[str, str], parent: str) -> None:
        self._parents: dict[str, str] = {}
        warnings: list[str] = []
        for controller in V1_CONTROLLERS:
            problem = self._prepare(controller, mounts.get(controller), parent)
            if problem:
                warnings.append(f"{MISSING[controller]} ({problem})")
        if not self._parents:
            raise CgroupError("no writable cgroup v1 controller: resource limits fall back to "
                              "rlimits", tuple(warnings))
        self.controllers = tuple(self._parents)
        warnings.extend(self._memory_warnings())
        self.warnings = tuple(warnings)

    def _prepare(self, controller: str, mountpoint: str | None, parent: str) -> str | None:
        if mountpoint is None:
            return "cgroup v1 controller not mounted"
        path = os.path.join(mountpoint, parent)
        try:
            os.makedirs(path, exist_ok=True)
            probe_mkdir(path)
        except OSError as e:
            return f"cannot create cgroups under {path}: {e.strerror}"
        self._parents[controller] = path
        return None

    def _memory_warnings(self) -> list[str]:
        memory = self._parents.get("memory")
        if memory is None:
            return []
        out = []
        if not os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes")) and host_has_swap():
            out.append("swap is not limited (memory.memsw.* missing; boot with swapaccount=1 "
                       "or disable swap): a sandbox may exceed memory_mb by swapping")
        if "oom_kill" not in read_keyed(os.path.join(memory, "memory.oom_control")):
            out.append("kernel lacks the memory.oom_control oom_kill counter: "
                       "oom_killed() only sees an OOM while it is in progress")
        return out

    def create(self, label: str) -> V1Cgroup:
        validate_label(label)
        name = unique_name(_unique(list(self._parents.values())), label)
        dirs: dict[str, str] = {}
        try:
            for controller, parent in self._parents.items():
                path = os.path.join(parent, name)
                if path not in dirs.values():
                    os.mkdir(path)
                dirs[controller] = path
        except OSError as e:
            for path in _unique(list(dirs.values())):
                rmdir_quiet(path)
            raise CgroupError(f"cannot create cgroup {name}: {e}") from e
        return V1Cgroup(name, dirs)

    def remove_stale(self) -> list[str]:
        names = sorted({os.path.basename(d) for p in self._parents.values() for d in child_dirs(p)})
        removed = []
        for name in names:
            dirs = {c: os.path.join(p, name) for c, p in self._parents.items()}
            if _drain_sync(dirs):
                removed.append(name)
        return removed

    def remove_parent(self) -> None:
        for path in _unique(list(self._parents.values())):
            rmdir_quiet(path)


def _drain_sync(dirs: dict[str, str], timeout: float = 2.0) -> bool:
    """Kill everything in a stale cgroup, thaw it, and remove its directories."""
    present = [d for d in _unique(list(dirs.values())) if os.path.isdir(d)]
    owner = live_owner([p for d in present for p in read_pids(os.path.join(d, "cgroup.procs"))])
    if owner is not None:
        log.warning("cgroup %s is in use by live pid %d: left alone", present[0], owner)
        return False
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for d in present for p in read_pids(os.path.join(d, "cgroup.procs"))]
        kill_pids(pids)
        if "freezer" in dirs and os.path.isdir(dirs["freezer"]):
            try_write(os.path.join(dirs["freezer"], "freezer.state"), "THAWED")
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return all(rmdir_retry_sync(d, timeout=0.5) for d in present)


class V1Cgroup:
    def __init__(self, name: str, dirs: dict[str, str]) -> None:
        self.name = name
        self._dirs = dirs
        self.controllers = tuple(dirs)
        self._removed = False

    def _file(self, controller: str, filename: str) -> str | None:
        path = self._dirs.get(controller)
        return None if path is None else os.path.join(path, filename)

    def _unique_dirs(self) -> list[str]:
        return _unique(list(self._dirs.values()))

    def open_join_fds(self) -> list[int]:
        return [os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
                for d in self._unique_dirs()]

    def set_limits(self, memory_bytes: int, cpu_millicores: int, pids_max: int) -> None:
        memory, cpu, pids = (self._dirs.get(c) for c in ("memory", "cpu", "pids"))
        if memory:
            self._set_memory(memory, memory_bytes)
        if cpu:
            write_text(os.path.join(cpu, "cpu.cfs_period_us"), str(CFS_PERIOD_US))
            self.set_cpu(cpu_millicores)
        if pids:
            write_text(os.path.join(pids, "pids.max"), str(pids_max))

    def set_cpu(self, cpu_millicores: int) -> None:
        cpu = self._dirs.get("cpu")
        if cpu:
            write_text(os.path.join(cpu, "cpu.cfs_quota_us"), str(cpu_quota_us(cpu_millicores, CFS_PERIOD_US)))

    @staticmethod
    def _set_memory(base: str, memory_bytes: int) -> None:
        write_text(os.path.join(base, "memory.limit_in_bytes"), str(memory_bytes))
        memsw = os.path.join(base, "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):
            write_text(memsw, str(memory_bytes))   # RAM + swap = RAM: no swapping past the limit
        try_write(os.path.join(base, "memory.swappiness"), "0")

    async def freeze(self) -> None:
        state = self._file("freezer", "freezer.state")
        if state is None:
            return
        write_text(state, "FROZEN")
        if not await wait_until(lambda: read_text(state).strip() == "FROZEN", timeout=2.0):
            raise CgroupError(f"cgroup {self.name} did not reach FROZEN within 2s")

    async def thaw(self) -> None:
        state = self._file("freezer", "freezer.state")
        if state is not None:
            write_text(state, "THAWED")

    def peak_memory_bytes(self) -> int:
        path = self._file("memory", "memory.max_usage_in_bytes")
        return 0 if path is None else read_int(path)

    def reset_peak_memory(self) -> None:
        path = self._file("memory", "memory.max_usage_in_bytes")
        if path is not None:
            try_write(path, "0")

    def oom_killed(self) -> bool:
        path = self._file("memory", "memory.oom_control")
        if path is None:
            return False
        control = read_keyed(path)
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        return control.get("under_oom", 0) > 0

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self._unique_dirs():
            found.update(read_pids(os.path.join(d, "cgroup.procs")))
        return sorted(found)

    async def kill_all(self, spare: int | None = None) -> None:
        frozen = False
        if "freezer" in self._dirs:
            try:
                await self.freeze()          # stop forks racing the kill loop
                frozen = True
            except (OSError, CgroupError):
                pass
        kill_pids(self.pids(), spare)
        if frozen:
            await self.thaw()                # frozen v1 tasks only die once thawed
        await wait_until(lambda: self._kill_remaining(spare), timeout=2.0)

    def _kill_remaining(self, spare: int | None) -> bool:
        """Kill what is left; True once nothing but `spare` is left."""
        pids = [p for p in self.pids() if p != spare]
        kill_pids(pids)
        return not pids

    async def remove(self) -> None:
        if self._removed:
            return
        for d in self._unique_dirs():
            await rmdir_retry(d)
        self._removed = True
