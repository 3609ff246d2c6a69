"""One environment's side of the Runtime API: hands events to the runtime, collects outcomes.

The environment (in `invoke`) drives a RuntimeSession; the HTTP routes call it. Nothing here
knows about pools or functions.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from lamina.runtime_api.states import Action, RuntimeState, TransitionRefused, transition


@dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    invoked_function_arn: str
    trace_id: str | None = None
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the runtime said about one invocation (or about its init)."""

    request_id: str
    payload: bytes
    error_type: str | None = None      # set for /error and /init/error

    @property
    def failed(self) -> bool:
        return self.error_type is not None


class UnknownRequest(Exception):
    pass


class SessionClosed(Exception):
    """The environment is going away; a runtime still waiting in /next gets no event."""


@dataclass
class RuntimeSession:
    state: RuntimeState = RuntimeState.INITIALIZING
    _queue: asyncio.Queue[Invocation] = field(default_factory=lambda: asyncio.Queue(maxsize=1))
    _current: Invocation | None = None
    _pending: dict[str, asyncio.Future[Outcome]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)       # set at the first /next: init done
    init_error: asyncio.Future[Outcome] | None = None
    _waiter: asyncio.Task[object] | None = None
    _closed: bool = False

    def __post_init__(self) -> None:
        self.init_error = asyncio.get_running_loop().create_future()

    # -- the environment's side --------------------------------------------------------
    def submit(self, invocation: Invocation) -> asyncio.Future[Outcome]:
        """Queue one event for the runtime; the future resolves with its response or error."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[invocation.request_id] = future
        self._queue.put_nowait(invocation)
        return future

    def abandon(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def close(self) -> None:
        """Release a runtime still parked in /next: its environment is going away."""
        self._closed = True
        if self._waiter is not None:
            self._waiter.cancel()

    # -- the runtime's side (HTTP routes) ----------------------------------------------
    async def next(self) -> Invocation:
        self._step(Action.NEXT)
        self._current = None
        self.ready.set()
        self._waiter = asyncio.current_task()
        try:
            invocation = await self._queue.get()
        except asyncio.CancelledError:
            if self._closed:
                raise SessionClosed() from None
            raise
        finally:
            self._waiter = None
        self.state = RuntimeState.INVOKING
        self._current = invocation
        return invocation

    def respond(self, request_id: str, payload: bytes) -> None:
        self._finish(request_id, Action.RESPONSE, Outcome(request_id, payload))

    def fail(self, request_id: str, payload: bytes, error_type: str) -> None:
        self._finish(request_id, Action.ERROR, Outcome(request_id, payload, error_type))

    def fail_init(self, payload: bytes, error_type: str) -> None:
        self._step(Action.INIT_ERROR)
        assert self.init_error is not None
        if not self.init_error.done():
            self.init_error.set_result(Outcome("", payload, error_type))

    def _finish(self, request_id: str, action: Action, outcome: Outcome) -> None:
        if self._current is None or self._current.request_id != request_id:
            if self.state is not RuntimeState.INVOKING:
                raise TransitionRefused(self.state, action)
            raise UnknownRequest(request_id)
        self._step(action)
        self._current = None
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    def _step(self, action: Action) -> None:
        self.state = transition(self.state, action)
