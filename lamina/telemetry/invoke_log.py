"""The execution log of one invocation as Lambda writes it: START, output, END, REPORT."""
from __future__ import annotations

import base64
import math

from lamina import limits


def billed_ms(duration_ms: float) -> int:
    return max(1, math.ceil(duration_ms))


def report_line(request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int,
                init_ms: float | None) -> str:
    line = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {billed_ms(duration_ms)} ms\t"
            f"Memory Size: {memory_mb} MB\tMax Memory Used: {max_memory_mb} MB\t")
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    return line


def execution_log(request_id: str, version: str, output: bytes, report: str, init_lines: bytes = b"") -> bytes:
    return b"".join([
        init_lines,
        f"START RequestId: {request_id} Version: {version}\n".encode(),
        output,
        f"END RequestId: {request_id}\n".encode(),
        report.encode() + b"\n",
    ])


def tail(log: bytes) -> str:
    """X-Amz-Log-Result: base64 of the last 4 KB."""
    return base64.b64encode(log[-limits.LOG_TAIL_BYTES:]).decode()
