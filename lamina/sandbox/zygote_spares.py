"""Spare children: per zygote, one child that did phase 1 of a start (forked, init in a cgroup
of its own without limits yet) ahead of time, its runtime waiting on its channel for a spec.
A start takes the spare and a new one is forked right after (see zygote_impl.py).
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from lamina.sandbox.cgroups import Cgroup, CgroupError, CgroupHierarchy
from lamina.sandbox.zygote_eligibility import ZygoteKey
from lamina.sandbox.zygote_handle import ZygoteChild, discard_cgroup
from lamina.sandbox.zygote_process import REPLY_TIMEOUT, Zygote, ZygoteError

log = logging.getLogger(__name__)

SPARE_DELAY = 0.01            # a used spare is replaced this long after
SPARE_LABEL = "zygote-spare"  # a spare's cgroup: no limits until a spec's are set (only lowered)

RequestChild = Callable[[Zygote, Cgroup | None], tuple[socket.socket, asyncio.Future[int]]]


@dataclass
class Spare:
    """A child forked ahead of time: init is in `cgroup` (no limits yet), the runtime waits on
    `channel` for its spec."""

    child: ZygoteChild
    channel: socket.socket
    cgroup: Cgroup | None
    zygote: Zygote

    def usable(self) -> bool:
        return self.zygote.alive and self.child.poll() is None

    async def discard(self, label: str = SPARE_LABEL) -> None:
        self.channel.close()                 # the runtime sees EOF and exits, init after it
        self.child.kill()
        for _ in range(200):
            if self.child.poll() is not None:
                break
            await asyncio.sleep(0.005)
        self.child.release()
        await discard_cgroup(self.cgroup, label)


class Spares:
    """The spare of each key and the tasks forking them. `live` gives the running zygote of a
    key (None: no spare for it now); `request_child` is phase 1 of a start."""

    def __init__(self, cgroups: CgroupHierarchy | None, live: Callable[[ZygoteKey], Zygote | None],
                 request_child: RequestChild) -> None:
        self._cgroups = cgroups
        self._live = live
        self._request_child = request_child
        self._spares: dict[ZygoteKey, Spare] = {}
        self._refills: dict[ZygoteKey, asyncio.Task[None]] = {}

    def pids(self) -> list[int]:
        return [spare.child.pid for spare in self._spares.values()]

    def take(self, key: ZygoteKey) -> Spare | None:
        return self._spares.pop(key, None)

    def schedule_refill(self, key: ZygoteKey, delay: float = SPARE_DELAY) -> asyncio.Task[None]:
        task = self._refills.get(key)
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(self._refill(key, delay))
            self._refills[key] = task
        return task

    def take_refills(self) -> list[asyncio.Task[None]]:
        """The refill tasks, forgotten here (the caller cancels and awaits them)."""
        refills, self._refills = list(self._refills.values()), {}
        return refills

    async def discard_all(self) -> None:
        spares, self._spares = list(self._spares.values()), {}
        for spare in spares:
            await spare.discard()

    async def _refill(self, key: ZygoteKey, delay: float) -> None:
        """Fork the spare of `key` (a little later, not to compete with the start that used it)."""
        try:
            if delay:
                await asyncio.sleep(delay)
            await self._make_spare(key)
        except (CgroupError, OSError, ZygoteError) as e:
            log.warning("no spare child for %s: %s", key.executable, e)

    async def _make_spare(self, key: ZygoteKey) -> None:
        zygote = self._live(key)
        if zygote is None or key in self._spares or self._cgroups is None:
            return
        cgroup = self._cgroups.create(SPARE_LABEL)
        try:
            channel, reply = self._request_child(zygote, cgroup)
        except BaseException:
            await discard_cgroup(cgroup, SPARE_LABEL)
            raise
        try:
            pid = await asyncio.wait_for(reply, REPLY_TIMEOUT)
            try:
                child = ZygoteChild(pid, zygote.release)
            except OSError:
                zygote.kill_orphan(pid)
                raise
        except BaseException as e:
            reply.cancel()
            channel.close()
            await discard_cgroup(cgroup, SPARE_LABEL)
            if isinstance(e, TimeoutError):
                raise ZygoteError(f"{zygote.describe()} did not answer in time") from None
            raise
        spare = Spare(child, channel, cgroup, zygote)
        if key in self._spares or not zygote.alive:
            await spare.discard()
        else:
            self._spares[key] = spare
