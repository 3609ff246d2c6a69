"""A running sandbox (the `SandboxProcess` of base.py): one process tree, its output pipe,
its cgroup, and /proc-based fallbacks for hosts without cgroup controllers."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import Callable

from lamina.sandbox.cgroups import Cgroup, CgroupError
from lamina.sandbox.proctree import TreeMemoryTracker, signal_pids, signal_tree, tree_pids

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 0.2          # peak-memory sampling period when there is no memory cgroup
REAP_TIMEOUT = 3.0
SUPERVISOR_GRACE = 1.0      # how long bwrap may take to notice its pid 1 died


def same_status(status: int) -> int:
    return status


class TreeProcess:
    """Owns the Popen of the first process, the output pipe's read end and the cgroup.

    `kill()` releases everything, including closing `output_fd`: stop reading it first
    (drain until EOF after `wait()` to get all output, or `freeze()` and drain before `kill()`).
    """

    def __init__(self, popen: subprocess.Popen[bytes], output_fd: int, cgroup: Cgroup | None, *,
                 label: str, exit_status: Callable[[int], int] = same_status,
                 supervisor: bool = False, cleanup: Callable[[], None] | None = None) -> None:
        self._popen = popen
        self._output_fd = output_fd
        self._cgroup = cgroup
        self._label = label
        self._exit_status = exit_status
        self._cleanup = cleanup
        self._supervisor = supervisor      # the first process exits by itself once its tree is gone
        self._loop = asyncio.get_running_loop()
        self._exited = asyncio.Event()
        self._kill_lock = asyncio.Lock()
        self._killed = False
        self._final_peak: int | None = None
        self._final_oom = False
        self._pidfd: int | None = None
        self._tracker: TreeMemoryTracker | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._watch_exit()
        if not self._has("memory"):
            self._tracker = TreeMemoryTracker(popen.pid)
            self._sampler = self._loop.create_task(self._sample_memory())

    # ------------------------------------------------------------ exit tracking

    def _has(self, controller: str) -> bool:
        return self._with(controller) is not None

    def _with(self, controller: str) -> Cgroup | None:
        """The cgroup, if it enforces `controller`."""
        cgroup = self._cgroup
        return cgroup if cgroup is not None and controller in cgroup.controllers else None

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self._popen.pid)
        except (AttributeError, OSError):          # no pidfd (Linux < 5.3): poll instead
            self._poller = self._loop.create_task(self._poll_exit())
            return
        self._loop.add_reader(self._pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._popen.wait()            # it has exited: reaps at once
        self._exited.set()

    async def _poll_exit(self) -> None:
        delay = 0.005
        while self._popen.poll() is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._exited.set()

    async def _sample_memory(self) -> None:
        assert self._tracker is not None
        while not self._exited.is_set():
            self._tracker.sample()
            await asyncio.sleep(SAMPLE_INTERVAL)

    # ------------------------------------------------------------ SandboxProcess

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def output_fd(self) -> int:
        return self._output_fd

    @property
    def cgroup_name(self) -> str | None:
        return self._cgroup.name if self._cgroup else None

    def returncode(self) -> int | None:
        status = self._popen.poll()
        return None if status is None else self._exit_status(status)

    async def wait(self) -> int:
        await self._exited.wait()
        status = self.returncode()
        assert status is not None
        return status

    def pids(self) -> list[int]:
        if self._cgroup is not None:
            return self._cgroup.pids()
        return tree_pids(self._popen.pid)

    def set_cpu(self, cpu_millicores: int) -> None:
        cgroup = self._with("cpu")
        if cgroup is not None:
            cgroup.set_cpu(cpu_millicores)

    async def freeze(self) -> None:
        if self._killed or self._exited.is_set():
            return
        cgroup = self._with("freezer")
        if cgroup is not None:
            await cgroup.freeze()
        else:
            signal_tree(self.pid, signal.SIGSTOP)

    async def thaw(self) -> None:
        if self._killed:
            return
        cgroup = self._with("freezer")
        if cgroup is not None:
            await cgroup.thaw()
        else:
            signal_tree(self.pid, signal.SIGCONT)

    def peak_memory_bytes(self) -> int:
        if self._final_peak is not None:
            return self._final_peak
        if self._tracker is not None:
            return self._tracker.sample()
        assert self._cgroup is not None
        return self._cgroup.peak_memory_bytes()

    def reset_peak_memory(self) -> None:
        if self._killed:
            return
        if self._tracker is not None:
            self._tracker.reset()
        elif self._cgroup is not None:
            self._cgroup.reset_peak_memory()

    def oom_killed(self) -> bool:
        cgroup = self._with("memory")
        if self._killed or cgroup is None:
            return self._final_oom
        return cgroup.oom_killed()

    async def kill(self) -> None:
        async with self._kill_lock:
            if self._killed:
                return
            try:
                await self._kill_tree()
            finally:
                self._killed = True
                self._release()

    # ------------------------------------------------------------ teardown

    async def _kill_tree(self) -> None:
        """Kill the descendants first, so the first process (bwrap) reaps them, then it."""
        first = self.pid
        if self._cgroup is not None:
            await self._cgroup.kill_all(spare=first)
        elif self._popen.poll() is None:
            signal_pids(tree_pids(first)[1:], signal.SIGKILL)
        if self._supervisor and not await self._exited_within(SUPERVISOR_GRACE):
            log.warning("sandbox %s: supervisor pid %d outlived its tree", self._label, first)
        if self._popen.poll() is None:
            self._popen.kill()
            try:
                os.killpg(first, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not await self._exited_within(REAP_TIMEOUT):
            log.error("sandbox %s: pid %d did not exit %.0fs after SIGKILL", self._label, first, REAP_TIMEOUT)
        self._snapshot()
        if self._cgroup is not None:
            try:
                await self._cgroup.remove()
            except CgroupError as e:
                log.warning("sandbox %s: %s", self._label, e)

    async def _exited_within(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._exited.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def _snapshot(self) -> None:
        """Keep the final figures: the cgroup that holds them is about to go."""
        cgroup = self._with("memory")
        self._final_peak = self.peak_memory_bytes()
        self._final_oom = cgroup is not None and cgroup.oom_killed()

    def _release(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        try:
            os.close(self._output_fd)
        except OSError:
            pass
        if self._cleanup is not None:
            try:
                self._cleanup()
            except OSError as e:
                log.warning("sandbox %s: cleanup failed: %s", self._label, e)
