"""A sandbox child of a zygote, from Lamina's side: `ZygoteChild`, the Popen-like handle on its
init, what tells how its setup went (the ready pipe, the channel, the output so far), and the
removal of the cgroup of a child that did not become a sandbox.
"""
from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import subprocess
from collections.abc import Callable

from lamina.sandbox.cgroups import Cgroup, CgroupError

log = logging.getLogger(__name__)


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on; [] when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return []


STAT_STARTTIME, STAT_EXIT_CODE = 22 - 3, 52 - 3     # indexes into _stat_fields()


class ZygoteChild:
    """Popen-like handle (pid, poll, wait, kill, returncode) on a sandbox's init, which is a
    child of the zygote, not of Lamina: exit is seen through a pidfd and the status is read
    from the zombie the zygote keeps until `release()`."""

    def __init__(self, pid: int, release: Callable[[int], None]) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._release = release
        self._released = False
        stat = _stat_fields(pid)
        self._starttime = stat[STAT_STARTTIME] if len(stat) > STAT_STARTTIME else ""
        self._pidfd: int | None = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and self._pidfd is not None:
            readable, _, _ = select.select([self._pidfd], [], [], 0)
            if readable:
                self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._pidfd is not None:
            select.select([self._pidfd], [], [], timeout)
        status = self.poll()
        if status is None:
            raise subprocess.TimeoutExpired(f"sandbox init {self.pid}", timeout or 0)
        return status

    def kill(self) -> None:
        if self.returncode is None and self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _collect(self) -> None:
        stat = _stat_fields(self.pid)
        if len(stat) > STAT_EXIT_CODE and stat[STAT_STARTTIME] == self._starttime:
            self.returncode = os.waitstatus_to_exitcode(int(stat[STAT_EXIT_CODE]))
        else:                      # reaped by someone else: the zygote died, and we with it
            self.returncode = -signal.SIGKILL
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.release()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._release(self.pid)


async def await_ready(fd: int, timeout: float) -> bool:
    """True once the child wrote its ready byte, False at EOF (setup failed) or timeout."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def on_readable() -> None:
        try:
            data = os.read(fd, 1)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not done.done():
            done.set_result(bool(data))

    os.set_blocking(fd, False)
    loop.add_reader(fd, on_readable)
    try:
        return await asyncio.wait_for(done, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


def channel_error(channel: socket.socket) -> bytes:
    """What a child reported on its channel before it had the output pipe (b"E<text>")."""
    try:
        msg = channel.recv(4096)
    except OSError:
        return b""
    return msg[1:] if msg.startswith(b"E") else b""


async def discard_cgroup(cgroup: Cgroup | None, label: str) -> None:
    if cgroup is None:
        return
    try:
        await cgroup.kill_all()
        await cgroup.remove()
    except (CgroupError, OSError) as e:
        log.warning("sandbox %s: %s", label, e)


def read_available(fd: int) -> bytes:
    out = b""
    while len(out) < 65536:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out
