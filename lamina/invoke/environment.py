"""One execution environment: a sandboxed runtime for one function version, one invoke at a time.

Lifecycle (explicit, anything unlisted raises): STARTING -> IDLE <-> BUSY, any -> DEAD.
"""
from __future__ import annotations

import asyncio
import enum
import itertools
import json
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from lamina import limits
from lamina.errors import ErrorType
from lamina.invoke.output import OutputCapture
from lamina.runtime_api.endpoint import RuntimeEndpoint
from lamina.runtime_api.session import Invocation, Outcome, RuntimeSession
from lamina.sandbox.base import Sandbox, SandboxProcess, SandboxSpec
from lamina.sandbox.peers import connection_owned_by

log = logging.getLogger("lamina.environment")
_ids = itertools.count(1)


class EnvState(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


_ALLOWED = {
    EnvState.STARTING: {EnvState.IDLE, EnvState.DEAD},
    EnvState.IDLE: {EnvState.BUSY, EnvState.DEAD},
    EnvState.BUSY: {EnvState.IDLE, EnvState.DEAD},
    EnvState.DEAD: {EnvState.DEAD},
}


@dataclass(frozen=True)
class Fault:
    """A failure the platform observed (not one the function reported)."""

    error_type: str
    message: str

    def payload(self) -> bytes:
        return json.dumps({"errorMessage": self.message, "errorType": self.error_type}).encode()


@dataclass(frozen=True)
class InitReport:
    duration_ms: float
    output: bytes
    failure: Outcome | Fault | None = None


@dataclass(frozen=True)
class InvokeReport:
    outcome: Outcome | Fault
    duration_ms: float
    output: bytes
    max_memory_bytes: int


def _exit_reason(code: int, oom: bool) -> str:
    if oom or code == -9:
        return "Runtime exited with error: signal: killed"
    if code < 0:
        return f"Runtime exited with error: signal: {-code}"
    if code == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: exit status {code}"


class Environment:
    def __init__(self, sandbox: Sandbox, spec: SandboxSpec, memory_mb: int, cpu_millicores: int,
                 freeze_after_s: float = 0.05) -> None:
        self.id = f"env-{next(_ids)}-{uuid.uuid4().hex[:8]}"
        self.state = EnvState.STARTING
        self.memory_mb = memory_mb
        self._cpu = cpu_millicores
        self.invocations = 0
        self.last_used = time.monotonic()
        self._sandbox = sandbox
        self._spec = spec
        self._session: RuntimeSession | None = None
        self._endpoint: RuntimeEndpoint | None = None
        self._proc: SandboxProcess | None = None
        self._output: OutputCapture | None = None
        self._exit: asyncio.Task[int] | None = None
        self._freeze: asyncio.Task[None] | None = None
        self._freeze_timer: asyncio.TimerHandle | None = None
        self._freeze_after = freeze_after_s

    def _to(self, state: EnvState) -> None:
        if state not in _ALLOWED[self.state]:
            raise RuntimeError(f"environment {self.id}: {self.state.value} -> {state.value} is not allowed")
        self.state = state

    # -- start and init ----------------------------------------------------------------
    async def start(self) -> InitReport:
        started = time.perf_counter()
        self._session = RuntimeSession()
        self._endpoint = RuntimeEndpoint(self._session, self._owns_connection)
        await self._endpoint.start()
        env = {**self._spec.env, "AWS_LAMBDA_RUNTIME_API": self._endpoint.address}
        self._proc = await self._sandbox.start(replace(self._spec, env=env, label=self.id))
        self._output = OutputCapture(self._proc.output_fd)
        self._exit = asyncio.ensure_future(self._proc.wait())
        failure = await self._await_init()
        duration = (time.perf_counter() - started) * 1000
        output = self._output.take()
        if failure is None:
            self._proc.set_cpu(self._cpu)     # init ran unthrottled, as Lambda's init phase does
            self._to(EnvState.IDLE)
        log.info("environment started (cold)", extra={"fields": {"env": self.id, "init_ms": round(duration, 2),
                                                                 "failed": failure is not None}})
        return InitReport(duration, output, failure)

    def _owns_connection(self, peer: tuple[str, int]) -> bool:
        """Is the process calling our Runtime API one of this sandbox's?"""
        if self._proc is None or self._endpoint is None:
            return False
        return connection_owned_by(self._proc.pids(), peer, self._endpoint.local)

    async def _await_init(self) -> Outcome | Fault | None:
        assert self._session is not None and self._exit is not None and self._session.init_error is not None
        ready = asyncio.ensure_future(self._session.ready.wait())
        waits: set[asyncio.Future[Any]] = {ready, self._session.init_error, self._exit}
        done, _ = await asyncio.wait(waits,
                                     timeout=limits.INIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if ready in done:
            return None
        if self._session.init_error in done:
            return self._session.init_error.result()
        if self._exit in done:
            return Fault(ErrorType.RUNTIME_EXIT.value, _exit_reason(self._exit.result(), self._oom()))
        return Fault("Runtime.Unknown", f"Init timed out after {limits.INIT_TIMEOUT_S:.2f} seconds")

    def _oom(self) -> bool:
        return self._proc is not None and self._proc.oom_killed()

    # -- invoke ------------------------------------------------------------------------
    async def invoke(self, invocation: Invocation, timeout_s: float) -> InvokeReport:
        assert self._session is not None and self._proc is not None and self._output is not None
        self._to(EnvState.BUSY)
        await self._thaw()
        self._proc.reset_peak_memory()
        started = time.perf_counter()
        future = self._session.submit(invocation)
        outcome = await self._await_outcome(invocation, future, timeout_s)
        duration = (time.perf_counter() - started) * 1000
        output = self._output.take()
        peak = self._proc.peak_memory_bytes()
        self.invocations += 1
        self.last_used = time.monotonic()
        if isinstance(outcome, Fault):
            await self.destroy()
        else:
            self._to(EnvState.IDLE)
            self._schedule_freeze()
        return InvokeReport(outcome, duration, output, peak)

    def _schedule_freeze(self) -> None:
        """Freeze once idle for a moment: back-to-back invokes skip a freeze/thaw round trip."""
        def start() -> None:
            self._freeze_timer = None
            if self.state is EnvState.IDLE and self._proc is not None:
                self._freeze = asyncio.ensure_future(self._proc.freeze())
        self._freeze_timer = asyncio.get_running_loop().call_later(self._freeze_after, start)

    async def _await_outcome(self, invocation: Invocation, future: asyncio.Future[Outcome],
                             timeout_s: float) -> Outcome | Fault:
        assert self._exit is not None and self._session is not None
        waits: set[asyncio.Future[Any]] = {future, self._exit}
        done, _ = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        rid = invocation.request_id
        if future in done:
            return future.result()
        self._session.abandon(rid)
        if self._exit in done:
            reason = _exit_reason(self._exit.result(), self._oom())
            return Fault(ErrorType.RUNTIME_EXIT.value, f"RequestId: {rid} Error: {reason}")
        return Fault(ErrorType.SANDBOX_TIMEDOUT.value,
                     f"RequestId: {rid} Error: Task timed out after {timeout_s:.2f} seconds")

    async def _thaw(self) -> None:
        assert self._proc is not None
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
            self._freeze_timer = None
        if self._freeze is not None:
            await self._freeze
            self._freeze = None
            await self._proc.thaw()

    # -- end ---------------------------------------------------------------------------
    async def destroy(self) -> None:
        if self.state is EnvState.DEAD:
            return
        self._to(EnvState.DEAD)
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
        if self._freeze is not None:
            await asyncio.gather(self._freeze, return_exceptions=True)
        if self._session is not None:
            self._session.close()
        if self._output is not None:
            self._output.close()
        if self._proc is not None:
            await self._proc.kill()
        if self._exit is not None:
            self._exit.cancel()
        if self._endpoint is not None:
            await self._endpoint.close()
        log.info("environment destroyed", extra={"fields": {"env": self.id, "invocations": self.invocations}})

    @property
    def alive(self) -> bool:
        return self.state is not EnvState.DEAD and (self._exit is None or not self._exit.done())
