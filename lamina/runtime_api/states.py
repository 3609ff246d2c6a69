"""The runtime's state machine: every allowed transition is listed; anything else is refused."""
from __future__ import annotations

import enum


class RuntimeState(str, enum.Enum):
    INITIALIZING = "initializing"      # started, has not asked for work yet
    READY = "ready"                    # waiting in /next
    INVOKING = "invoking"              # holds an event, owes a response or an error
    FAILED = "failed"                  # reported an init error; will get nothing more


class Action(str, enum.Enum):
    NEXT = "next"
    RESPONSE = "response"
    ERROR = "error"
    INIT_ERROR = "init_error"


_TRANSITIONS: dict[tuple[RuntimeState, Action], RuntimeState] = {
    (RuntimeState.INITIALIZING, Action.NEXT): RuntimeState.READY,
    (RuntimeState.INITIALIZING, Action.INIT_ERROR): RuntimeState.FAILED,
    (RuntimeState.READY, Action.NEXT): RuntimeState.READY,          # a retried long poll
    (RuntimeState.INVOKING, Action.RESPONSE): RuntimeState.READY,
    (RuntimeState.INVOKING, Action.ERROR): RuntimeState.READY,
    (RuntimeState.INVOKING, Action.NEXT): RuntimeState.READY,        # AWS treats it as "done, give me more"
}


class TransitionRefused(Exception):
    def __init__(self, state: RuntimeState, action: Action) -> None:
        super().__init__(f"{action.value} is not allowed while the runtime is {state.value}")
        self.state = state
        self.action = action


def transition(state: RuntimeState, action: Action) -> RuntimeState:
    try:
        return _TRANSITIONS[(state, action)]
    except KeyError:
        raise TransitionRefused(state, action) from None
