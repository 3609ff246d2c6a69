"""Running one invocation on a leased environment and turning what happened into a result."""
from __future__ import annotations

import time
from dataclasses import dataclass

from lamina.invoke.environment import Fault, InitReport, InvokeReport
from lamina.invoke.launch import Launch
from lamina.runtime_api.session import Invocation, Outcome
from lamina.telemetry import invoke_log, server_log


@dataclass(frozen=True)
class InvocationResult:
    """A function failure is a value here (`function_error`), never an exception."""

    request_id: str
    payload: bytes
    executed_version: str
    function_error: str | None
    log: bytes
    duration_ms: float
    cold: bool


def _init_lines(launch: Launch, init: InitReport | None) -> bytes:
    if init is None:
        return b""
    c = launch.choice
    used = c.executable if not c.prefix else f"{c.executable} ({c.prefix.name})"
    note = f"\t{c.note}" if c.note else ""
    return f"INIT_START Runtime Version: {c.runtime}.lamina\tRuntime: {used}{note}\n".encode() + init.output


def failed_init_result(inv: Invocation, version: str, memory_mb: int, init: InitReport,
                       launch: Launch) -> InvocationResult:
    failure = init.failure
    assert failure is not None
    payload = failure.payload if isinstance(failure, Outcome) else Fault(
        failure.error_type, f"RequestId: {inv.request_id} Error: {failure.message}").payload()
    report = invoke_log.report_line(inv.request_id, init.duration_ms, memory_mb, 0, init.duration_ms)
    lines = _init_lines(launch, init) + f"INIT_REPORT Init Duration: {init.duration_ms:.2f} ms\tPhase: init\t" \
        f"Status: error\n".encode()
    return InvocationResult(inv.request_id, payload, version, "Unhandled",
                            invoke_log.execution_log(inv.request_id, version, b"", report, lines),
                            init.duration_ms, True)


def invocation_result(inv: Invocation, version: str, memory_mb: int, report: InvokeReport,
                      init: InitReport | None, launch: Launch) -> InvocationResult:
    outcome = report.outcome
    error: str | None = "Unhandled"
    if isinstance(outcome, Fault):
        payload = outcome.payload()
    else:
        payload, error = outcome.payload, ("Unhandled" if outcome.failed else None)
    max_mb = report.max_memory_bytes // (1024 * 1024)
    line = invoke_log.report_line(inv.request_id, report.duration_ms, memory_mb, max_mb,
                                  init.duration_ms if init else None)
    output = report.output
    if isinstance(outcome, Fault):
        output += f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}Z {inv.request_id} {outcome.message}\n" \
            .encode()
    server_log.annotate(start="cold" if init is not None else "warm", duration_ms=round(report.duration_ms, 2),
                        function_error=error, executed_version=version)
    return InvocationResult(inv.request_id, payload, version, error,
                            invoke_log.execution_log(inv.request_id, version, output, line, _init_lines(launch, init)),
                            report.duration_ms, init is not None)
