"""Throughput: warm invokes per second with 1, 2, 4, 8, 16, 32 concurrent clients.

Each client is an asyncio task (uvloop) with its own raw HTTP/1.1 keep-alive connection sending
synchronous invokes back to back for a fixed duration per level. The handler (python3.12,
MemorySize 1769 = 1 vCPU; CPU share is proportional to memory as on AWS) returns its event.

Every concurrent invoke needs its own environment, so before each level C concurrent invokes
that sleep 0.5 s force C environments to exist (cold starts happen there, not in the measured
window), then a short unmeasured warm-up runs.

Requests are pre-signed (SigV4, botocore) once per level: signing each request in the client
would make the single Python client process the bottleneck (see warm_invoke's signing_ms for its
cost). Signatures stay valid for 5 minutes, far longer than a level.

Baseline: the echo server (uvloop asyncio, own process) at the same concurrency, same client,
same request bytes.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import _common as c
import uvloop

LEVELS = (1, 2, 4, 8, 16, 32)
MEMORY_MB = c.ONE_VCPU_MB


def raw_request(port: int, function: str, body: bytes) -> bytes:
    """The full request bytes, signed once (headers identical for every request of a level)."""
    client = c.RawClient(port, function)
    headers = client.sign(body)
    client.close()
    head = f"POST {client.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def one_client(port: int, request: bytes, until: float, latencies: list[float],
                     errors: list[str], measure_from: float, counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= until:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            data = await reader.readexactly(length)
            t1 = time.perf_counter()
            counter[0] += 1
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode() + " " + data[:120].decode(errors="replace"))
            elif t0 >= measure_from:
                latencies.append((t1 - t0) * 1000)
    finally:
        writer.close()


async def run_level(port: int, request: bytes, concurrency: int, warmup_s: float,
                    duration_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    counter = [0]
    now = time.perf_counter()
    measure_from = now + warmup_s
    until = measure_from + duration_s
    await asyncio.gather(*(one_client(port, request, until, latencies, errors, measure_from, counter)
                           for _ in range(concurrency)))
    # Requests that started in the window; the last may end just after it.
    s = c.summary(latencies)
    return {"invokes_per_s": round(len(latencies) / duration_s, 1), "completed": len(latencies),
            "requests_including_warmup": counter[0], "errors": len(errors), "first_error": errors[0] if errors else None,
            "latency_ms": {k: s.get(k) for k in ("p50", "p99", "max")}}


async def force_environments(port: int, function: str, concurrency: int) -> None:
    """`concurrency` overlapping invokes: each needs an environment of its own."""
    body = json.dumps({"sleep": 0.5}).encode()
    request = raw_request(port, function, body)

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:")
        await reader.readexactly(length)
        writer.close()
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"warm-up invoke failed: {head[:200]!r}")
    await asyncio.gather(*(one() for _ in range(concurrency)))


def main() -> None:
    ap = c.parser(__doc__.splitlines()[0], default_n=5, quick_n=1)
    ap.add_argument("--payload-bytes", type=int, default=128)
    ap.add_argument("--levels", default=",".join(map(str, LEVELS)))
    args = ap.parse_args()
    # --n here is the measured seconds per level and target (default 5 s, --quick 0.7 s).
    duration = float(args.n) if args.n is not None else (0.7 if args.quick else 5.0)
    warmup = 0.2 if args.quick else 0.5
    levels = [int(x) for x in args.levels.split(",") if x]
    c.watchdog(29 if args.quick else 178)
    started = time.monotonic()
    machine = c.machine()
    body = c.payload(args.payload_bytes)

    lam = c.Lamina()
    name = "bench-throughput"
    lam.create_function(name, c.ECHO, MEMORY_MB)
    echo = c.EchoServer("uvloop")

    uvloop.install()
    results: list[dict[str, Any]] = []
    for conc in levels:
        t_env = time.perf_counter()
        for _attempt in range(3):     # an invoke that arrives after another ended may reuse its environment
            asyncio.run(force_environments(lam.port, name, conc))
            envs = len(c.sandbox_cgroups(lam.pid))
            if envs >= conc:
                break
        env_s = time.perf_counter() - t_env

        request = raw_request(lam.port, name, body)
        echo_request = raw_request(echo.port, name, body)
        cpu0 = time.process_time()
        srv0 = c.cpu_seconds(lam.pid)
        sandbox_pids = [p for pids in c.sandbox_cgroups(lam.pid).values() for p in pids]
        sb0 = sum(c.cpu_seconds(p) for p in sandbox_pids)
        lamina = asyncio.run(run_level(lam.port, request, conc, warmup, duration))
        wall = warmup + duration
        lamina["cpu_share_of_one_core"] = {
            "client": round((time.process_time() - cpu0) / wall, 2),
            "server": round((c.cpu_seconds(lam.pid) - srv0) / wall, 2),
            "sandboxes": round((sum(c.cpu_seconds(p) for p in sandbox_pids) - sb0) / wall, 2)}
        lamina["server_cpu_ms_per_invoke"] = round(
            (c.cpu_seconds(lam.pid) - srv0) * 1000 / max(1, lamina["requests_including_warmup"]), 3)
        cpu0 = time.process_time()
        baseline = asyncio.run(run_level(echo.port, echo_request, conc, warmup, duration))
        baseline["cpu_share_of_one_core"] = {"client": round((time.process_time() - cpu0) / wall, 2)}
        results.append({"concurrency": conc, "environments": envs, "environment_warmup_s": round(env_s, 2),
                        "lamina": lamina, "baseline_echo": baseline,
                        "ratio_invokes_per_s": c.ratio(lamina["invokes_per_s"], baseline["invokes_per_s"])})
        c.log(f"concurrency {conc}: lamina {lamina['invokes_per_s']}/s, echo {baseline['invokes_per_s']}/s")

    echo.close()
    lam.close()
    peak = max(results, key=lambda r: r["lamina"]["invokes_per_s"])
    result = {
        "benchmark": "throughput",
        "what": "warm synchronous invokes per second at fixed client concurrency",
        "memory_mb": MEMORY_MB,
        "memory_note": "CPU share is proportional to memory (1769 MB = 1 vCPU, as on AWS)",
        "client": "asyncio (uvloop) tasks, one raw HTTP/1.1 keep-alive connection each, in one process; "
                  "requests pre-signed once per level",
        "payload_bytes": len(body),
        "seconds_per_level": duration,
        "levels": results,
        "peak": {"concurrency": peak["concurrency"], "invokes_per_s": peak["lamina"]["invokes_per_s"],
                 "baseline_invokes_per_s": peak["baseline_echo"]["invokes_per_s"],
                 "ratio": peak["ratio_invokes_per_s"]},
        "baseline": "echo server (asyncio Protocol on uvloop, own process) at the same concurrency, same client",
        "note": "client, server and sandboxes share the 2 cores of this machine; cpu_share_of_one_core says "
                "who used them (1.0 = one full core); server_cpu_ms_per_invoke is the `lamina serve` process's "
                "CPU time (user+sys) per invoke",
        "target": {"name": ">= 1000 warm invokes/s", "value": peak["lamina"]["invokes_per_s"],
                   "met": peak["lamina"]["invokes_per_s"] >= 1000},
        "machine": machine,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    c.emit(result)


if __name__ == "__main__":
    main()
