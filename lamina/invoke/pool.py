"""Warm environments, keyed by (function version, tenant): claim one or start one; evict when idle."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Awaitable, Callable

from lamina.errors import TooManyRequestsException
from lamina.invoke.environment import Environment, EnvState, InitReport

log = logging.getLogger("lamina.pool")


@dataclass(frozen=True)
class PoolKey:
    account: str
    region: str
    name: str
    version: str
    revision_id: str              # a changed $LATEST never reuses an old environment
    tenant: str | None = None

    @property
    def function(self) -> tuple[str, str, str]:
        return (self.account, self.region, self.name)


@dataclass
class Lease:
    """The unit concurrency counts: one environment held for one invocation."""

    lease_id: str
    key: PoolKey
    env: Environment
    init: InitReport | None       # set when this lease started the environment (a cold start)


Factory = Callable[[], Awaitable[tuple[Environment, InitReport]]]


class Pool:
    def __init__(self, max_environments: int, keep_alive_s: float) -> None:
        self._max = max_environments
        self._keep_alive = keep_alive_s
        self._idle: dict[PoolKey, list[Environment]] = defaultdict(list)
        self._leases: dict[str, Lease] = {}
        self._starting = 0
        self._evictor: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        return sum(len(v) for v in self._idle.values()) + len(self._leases) + self._starting

    def start(self) -> None:
        self._evictor = asyncio.ensure_future(self._evict_loop())

    async def acquire(self, key: PoolKey, factory: Factory) -> Lease:
        env = self._take_idle(key)
        init = None
        if env is None:
            await self._make_room()
            self._starting += 1
            try:
                env, init = await factory()
            finally:
                self._starting -= 1
        lease = Lease(str(uuid.uuid4()), key, env, init)
        self._leases[lease.lease_id] = lease
        return lease

    def _take_idle(self, key: PoolKey) -> Environment | None:
        idle = self._idle.get(key)
        while idle:
            env = idle.pop()
            if env.alive:
                return env
            asyncio.ensure_future(env.destroy())
        return None

    async def _make_room(self) -> None:
        if self.size < self._max:
            return
        oldest = min((e for envs in self._idle.values() for e in envs), key=lambda e: e.last_used, default=None)
        if oldest is None:
            raise TooManyRequestsException("Rate Exceeded.", Reason="ConcurrentInvocationLimitExceeded")
        self._remove_idle(oldest)
        await oldest.destroy()

    def _remove_idle(self, env: Environment) -> None:
        for envs in self._idle.values():
            if env in envs:
                envs.remove(env)

    async def release(self, lease_id: str) -> None:
        lease = self._leases.pop(lease_id)
        if lease.env.state is EnvState.IDLE and lease.env.alive:
            self._idle[lease.key].append(lease.env)
        else:
            await lease.env.destroy()

    async def forget(self, function: tuple[str, str, str], version: str | None = None) -> None:
        """Drop idle environments of a function (or one version) that was changed or deleted."""
        for key in list(self._idle):
            if key.function == function and (version is None or key.version == version):
                for env in self._idle.pop(key):
                    await env.destroy()

    def retire_stale(self, key: PoolKey) -> None:
        """Idle environments for an older revision of the same version will never be claimed again;
        they are destroyed off the invoke path."""
        for other in list(self._idle):
            if other.function == key.function and other.version == key.version and other.revision_id != key.revision_id:
                for env in self._idle.pop(other):
                    task = asyncio.ensure_future(env.destroy())
                    self._retiring.add(task)
                    task.add_done_callback(self._retiring.discard)

    async def _evict_loop(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._keep_alive))
            now = time.monotonic()
            for key, envs in list(self._idle.items()):
                for env in [e for e in envs if now - e.last_used > self._keep_alive or not e.alive]:
                    envs.remove(env)
                    log.info("evicting idle environment", extra={"fields": {"env": env.id, "function": key.name}})
                    await env.destroy()

    async def close(self) -> None:
        if self._evictor is not None:
            self._evictor.cancel()
        envs = [e for envs in self._idle.values() for e in envs] + [lease.env for lease in self._leases.values()]
        self._idle.clear()
        await asyncio.gather(*(e.destroy() for e in envs), *self._retiring, return_exceptions=True)
