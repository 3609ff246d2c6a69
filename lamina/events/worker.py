"""Drains the event queue through the invoke router: retries with back-off, then gives up loudly.

AWS's defaults: 2 retries after the first attempt, delays of about 1 and 2 minutes (scaled down
here by `retry_base_s`), throttles retried until the event's maximum age (6 hours).
"""
from __future__ import annotations

import asyncio
import logging
import time

from lamina import limits
from lamina.arn import FunctionRef
from lamina.control.scope import Scope
from lamina.errors import (
    RequestEntityTooLargeException,
    ResourceNotFoundException,
    ServiceError,
    TooManyRequestsException,
)
from lamina.events.queue import EventQueue, QueuedEvent
from lamina.invoke.router import Invoker, InvokeRequest
from lamina.telemetry import server_log

log = logging.getLogger("lamina.events")

MAX_ATTEMPTS = 3
MAX_AGE_S = 6 * 3600


class EventService:
    def __init__(self, queue: EventQueue, invoker: Invoker, retry_base_s: float = 1.0) -> None:
        self._queue = queue
        self._invoker = invoker
        self._retry_base = retry_base_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def accept(self, req: InvokeRequest) -> None:
        if len(req.payload) > limits.ASYNC_PAYLOAD_MAX_BYTES:
            raise RequestEntityTooLargeException(f"{len(req.payload)} byte payload is too large for the Event "
                                                 f"invocation type (limit {limits.ASYNC_PAYLOAD_MAX_BYTES} bytes)")
        self._invoker.resolve(req)  # unknown function or qualifier: fail now, as AWS does
        self._queue.enqueue(req.request_id, req.scope.account, req.scope.region, req.ref.name, req.qualifier,
                            req.payload)
        self._wake.set()

    def start(self) -> None:
        recovered = self._queue.release_claims()
        if recovered:
            log.warning("re-queued events interrupted by a previous stop", extra={"fields": {"events": recovered}})
        self._task = asyncio.ensure_future(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for task in list(self._running):
            task.cancel()

    async def _loop(self) -> None:
        while True:
            for event in self._queue.claim(visibility_s=limits.TIMEOUT_MAX_S + 60):
                task = asyncio.ensure_future(self._deliver(event))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass

    async def _deliver(self, event: QueuedEvent) -> None:
        tokens = server_log.begin_request(event.id)
        try:
            await self._attempt(event)
            log.info("event attempt", extra={"fields": {"attempt": event.attempts, **server_log.request_fields()}})
        finally:
            server_log.end_request(tokens)

    async def _attempt(self, event: QueuedEvent) -> None:
        req = InvokeRequest(Scope(event.account, event.region), FunctionRef(event.function_name), event.qualifier,
                            event.payload, event.id)
        try:
            result = await self._invoker.invoke(req)
        except TooManyRequestsException:
            self._queue.retry_later(event, self._retry_base)
            return
        except ResourceNotFoundException:
            log.warning("event dropped: function no longer exists", extra={"fields": {"event": event.id}})
            self._queue.ack(event)
            return
        except ServiceError as err:
            log.warning("event invoke failed", extra={"fields": {"event": event.id, "error": err.code}})
            result = None
        if result is not None and result.function_error is None:
            self._queue.ack(event)
            return
        too_old = time.time() - event.enqueued_at > MAX_AGE_S
        if event.attempts >= MAX_ATTEMPTS or too_old:
            log.warning("event retries exhausted", extra={"fields": {"event": event.id, "attempts": event.attempts}})
            self._queue.ack(event)
            return
        self._queue.retry_later(event, self._retry_base * 2 ** (event.attempts - 1))
