"""A function version's configuration and lifecycle state, as Lamina holds it."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

LATEST = "$LATEST"


class State(str, enum.Enum):
    PENDING = "Pending"
    ACTIVE = "Active"
    FAILED = "Failed"
    INACTIVE = "Inactive"


class UpdateStatus(str, enum.Enum):
    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


# Function state machine: anything not listed is a bug and raises.
_STATE_TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.ACTIVE, State.FAILED}),
    State.ACTIVE: frozenset({State.ACTIVE, State.INACTIVE}),
    State.INACTIVE: frozenset({State.ACTIVE}),
    State.FAILED: frozenset(),
}


def check_transition(current: State, new: State) -> None:
    if new not in _STATE_TRANSITIONS[current]:
        raise RuntimeError(f"function state {current.value} cannot become {new.value}")


@dataclass(frozen=True)
class LayerAttachment:
    arn: str                 # layer version ARN
    code_size: int           # zipped, as AWS reports it
    code_hash: str           # hex sha256 of the layer zip (blob key)
    unzipped_size: int = 0   # counts toward the function's 250 MB


@dataclass(frozen=True)
class Code:
    sha256_b64: str          # CodeSha256 as AWS reports it
    size: int                # zip byte length
    blob_hash: str           # hex sha256, the blob store key
    unzipped_size: int


@dataclass(frozen=True)
class FunctionConfig:
    """Everything that defines what runs; a published version freezes one of these."""

    runtime: str | None
    role: str
    handler: str | None
    code: Code
    description: str = ""
    timeout_s: int = 3
    memory_mb: int = 128
    ephemeral_mb: int = 512
    environment: dict[str, str] | None = None
    architectures: tuple[str, ...] = ("x86_64",)
    layers: tuple[LayerAttachment, ...] = ()
    tracing_mode: str = "PassThrough"
    tenancy_mode: str | None = None
    log_format: str = "Text"
    log_group: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime, "role": self.role, "handler": self.handler,
            "code": vars(self.code), "description": self.description, "timeout_s": self.timeout_s,
            "memory_mb": self.memory_mb, "ephemeral_mb": self.ephemeral_mb,
            "architectures": list(self.architectures), "layers": [vars(layer) for layer in self.layers],
            "tracing_mode": self.tracing_mode, "tenancy_mode": self.tenancy_mode,
            "log_format": self.log_format, "log_group": self.log_group,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any], environment: dict[str, str] | None) -> FunctionConfig:
        fields = dict(doc)
        fields["code"] = Code(**doc["code"])
        fields["architectures"] = tuple(doc["architectures"])
        fields["layers"] = tuple(LayerAttachment(**layer) for layer in doc["layers"])
        return cls(environment=environment, **fields)



@dataclass(frozen=True)
class FunctionVersion:
    """One row of a function's history: `$LATEST` or a published, immutable number."""

    account: str
    region: str
    name: str
    version: str
    config: FunctionConfig
    revision_id: str
    last_modified: str
    state: State = State.PENDING
    state_reason: str | None = "The function is being created."
    state_reason_code: str | None = "Creating"
    last_update_status: UpdateStatus | None = None
    code_revision: int = 0          # bumps on every UpdateFunctionCode, even with the same bytes
    extra: dict[str, Any] = field(default_factory=dict)

    def with_state(self, state: State) -> FunctionVersion:
        check_transition(self.state, state)
        return replace(self, state=state, state_reason=None, state_reason_code=None)
