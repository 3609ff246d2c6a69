"""Placement: where an invocation runs. Embedded mode places on this node's pool; cluster mode
will place across nodes behind the same protocol (a lease names the environment, not the caller)."""
from __future__ import annotations

from typing import Protocol

from lamina.invoke.pool import Factory, Lease, Pool, PoolKey


class Placement(Protocol):
    async def acquire(self, key: PoolKey, factory: Factory) -> Lease: ...
    async def release(self, lease_id: str) -> None: ...
    async def forget(self, function: tuple[str, str, str], version: str | None = None) -> None: ...


class LocalPlacement:
    """Every environment on this machine."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def acquire(self, key: PoolKey, factory: Factory) -> Lease:
        self._pool.retire_stale(key)
        return await self._pool.acquire(key, factory)

    async def release(self, lease_id: str) -> None:
        await self._pool.release(lease_id)

    async def forget(self, function: tuple[str, str, str], version: str | None = None) -> None:
        await self._pool.forget(function, version)
