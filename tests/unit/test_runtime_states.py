"""The Runtime API state machine refuses what it does not list."""
from __future__ import annotations

import asyncio

import pytest

from lamina.runtime_api.session import Invocation, RuntimeSession, UnknownRequest
from lamina.runtime_api.states import Action, RuntimeState, TransitionRefused, transition


def test_listed_transitions() -> None:
    assert transition(RuntimeState.INITIALIZING, Action.NEXT) is RuntimeState.READY
    assert transition(RuntimeState.INVOKING, Action.RESPONSE) is RuntimeState.READY


@pytest.mark.parametrize("state,action", [
    (RuntimeState.INITIALIZING, Action.RESPONSE), (RuntimeState.READY, Action.RESPONSE),
    (RuntimeState.READY, Action.INIT_ERROR), (RuntimeState.FAILED, Action.NEXT),
])
def test_unlisted_transitions_raise(state: RuntimeState, action: Action) -> None:
    with pytest.raises(TransitionRefused):
        transition(state, action)


def test_session_round_trip_and_wrong_request_id() -> None:
    async def scenario() -> None:
        session = RuntimeSession()
        waiter = asyncio.ensure_future(session.next())
        await asyncio.sleep(0)
        assert session.ready.is_set()
        future = session.submit(Invocation("req-1", b"{}", 0, "arn"))
        inv = await waiter
        assert inv.request_id == "req-1"
        with pytest.raises(UnknownRequest):
            session.respond("other", b"1")
        session.respond("req-1", b"42")
        assert (await future).payload == b"42"
        with pytest.raises(TransitionRefused):
            session.respond("req-1", b"again")
    asyncio.run(scenario())
