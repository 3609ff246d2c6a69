"""Concurrency leases: an account may run at most N invocations at once; beyond that, 429."""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

from lamina.errors import TooManyRequestsException


class Throttle:
    def __init__(self, account_limit: int) -> None:
        self._limit = account_limit
        self._in_flight: dict[str, int] = defaultdict(int)

    def in_flight(self, account: str) -> int:
        return self._in_flight[account]

    @contextmanager
    def lease(self, account: str) -> Iterator[None]:
        if self._in_flight[account] >= self._limit:
            raise TooManyRequestsException("Rate Exceeded.", Reason="ConcurrentInvocationLimitExceeded")
        self._in_flight[account] += 1
        try:
            yield
        finally:
            self._in_flight[account] -= 1
