"""Warm invoke: latency of a synchronous invoke that reuses a warm environment.

Clients: (a) a raw http.client keep-alive connection, SigV4-signed with botocore once per request
(signing is timed separately and reported), (b) boto3 `invoke`. The handler returns its event
(python3.12), payload --payload-bytes of JSON. MemorySize 1769 (= 1 vCPU, CPU share is
proportional to memory as on AWS) and 128 (~0.07 vCPU).

Baseline: a minimal HTTP/1.1 keep-alive echo server on 127.0.0.1 in its own process, hit by the
same raw client with the same request (same path, signed headers and body). Three echo servers
are measured (asyncio, asyncio on uvloop, http.server); the lowest p50 is the baseline.

Targets are interleaved in blocks so machine noise hits all of them alike; the first request of a
block is a warm-up and not counted (an environment idle for > 50 ms is frozen, and thawing it is
measured separately as `after_idle`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import _common as c

ECHO_IMPLS = ("asyncio", "uvloop", "http.server")
BLOCK = 50


def main() -> None:
    ap = c.parser(__doc__.splitlines()[0], default_n=1000, quick_n=100)
    ap.add_argument("--payload-bytes", type=int, default=128)
    args = ap.parse_args()
    n = c.sample_count(args)
    budget = 18.0 if args.quick else 140.0
    c.watchdog(29 if args.quick else 178)
    started = time.monotonic()
    machine = c.machine()
    body = c.payload(args.payload_bytes)

    lam = c.Lamina()
    fns = {1769: "bench-warm-1769", 128: "bench-warm-128"}
    for mem, name in fns.items():
        lam.create_function(name, c.ECHO, mem)
    echoes = {impl: c.EchoServer(impl) for impl in ECHO_IMPLS}

    raw = {mem: c.RawClient(lam.port, name) for mem, name in fns.items()}
    for client in raw.values():
        client.invoke(body)           # the cold start, not counted
    boto = lam.server.client()
    boto_body = body

    def boto_call(name: str) -> Callable[[], tuple[float, float]]:
        def call() -> tuple[float, float]:
            t0 = time.perf_counter()
            resp = boto.invoke(FunctionName=name, Payload=boto_body)
            data = resp["Payload"].read()
            if resp["StatusCode"] != 200 or "FunctionError" in resp:
                raise RuntimeError(f"boto3 invoke failed: {resp} {data[:200]!r}")
            return time.perf_counter() - t0, 0.0
        return call

    def raw_call(client: c.RawClient) -> Callable[[], tuple[float, float]]:
        def call() -> tuple[float, float]:
            status, _h, data, total, sign = client.invoke(body)
            if status != 200 or data != body:
                raise RuntimeError(f"invoke failed: {status} {data[:200]!r}")
            return total, sign
        return call

    echo_clients = {impl: c.RawClient(e.port, fns[1769]) for impl, e in echoes.items()}
    targets: dict[str, Callable[[], tuple[float, float]]] = {
        "raw_1769": raw_call(raw[1769]), "boto3_1769": boto_call(fns[1769]),
        "raw_128": raw_call(raw[128]), "boto3_128": boto_call(fns[128]),
        **{f"echo_{impl}": raw_call(cl) for impl, cl in echo_clients.items()},
    }
    totals: dict[str, list[float]] = {k: [] for k in targets}
    signs: dict[str, list[float]] = {k: [] for k in targets}
    for call in targets.values():     # one warm round each, not counted
        for _ in range(5):
            call()

    deadline = started + budget * 0.85
    while min(len(v) for v in totals.values()) < n and time.monotonic() < deadline:
        for key, call in targets.items():
            want = min(BLOCK, n - len(totals[key]))
            if want <= 0:
                continue
            call()                    # warm-up of the block
            for _ in range(want):
                total, sign = call()
                totals[key].append(total * 1000)
                signs[key].append(sign * 1000)

    # The server's own view: REPORT `Duration` (event handed to the runtime -> its response).
    tail_client = c.RawClient(lam.port, fns[1769], log_tail=True)
    report_ms: list[float] = []
    tail_client.invoke(body)
    for _ in range(max(20, n // 10)):
        _st, headers, _d, _t, _s = tail_client.invoke(body)
        found = c.DURATION_RE.search(c.log_result(headers))
        if found:
            report_ms.append(float(found.group(1)))
    tail_client.close()

    # Warm but idle: the environment was frozen after its idle grace; the invoke thaws it.
    idle_ms: list[float] = []
    n_idle = max(5, n // 20)
    idle_deadline = started + budget
    for _ in range(n_idle):
        if time.monotonic() > idle_deadline:
            break
        time.sleep(0.25)
        total, _sign = targets["raw_1769"]()
        idle_ms.append(total * 1000)

    for cl in [*raw.values(), *echo_clients.values()]:
        cl.close()
    for e in echoes.values():
        e.close()
    lam.close()

    def stats(key: str) -> dict[str, Any]:
        s = c.summary(totals[key])
        if key.startswith(("raw", "echo")):
            sign = c.summary(signs[key])
            wire = [t - g for t, g in zip(totals[key], signs[key])]
            s["signing_ms"] = {"p50": sign.get("p50"), "mean": sign.get("mean")}
            s["without_signing_ms"] = {k: v for k, v in c.summary(wire).items() if k in ("p50", "p99")}
            s["signing_share_of_p50"] = c.ratio(sign.get("p50", 0), s.get("p50", 0))
        return s

    echo_stats = {impl: stats(f"echo_{impl}") for impl in ECHO_IMPLS}
    best = min(ECHO_IMPLS, key=lambda impl: echo_stats[impl].get("p50", float("inf")))
    base = echo_stats[best]
    lamina = {key: stats(key) for key in ("raw_1769", "boto3_1769", "raw_128", "boto3_128")}

    def diff(key: str) -> dict[str, Any]:
        s = lamina[key]
        return {"p50_minus_baseline_ms": round(s["p50"] - base["p50"], 3),
                "p99_minus_baseline_ms": round(s["p99"] - base["p99"], 3),
                "p50_ratio": c.ratio(s["p50"], base["p50"]), "p99_ratio": c.ratio(s["p99"], base["p99"])}

    raw_diff = lamina["raw_1769"]["p50"] - base["p50"]
    result = {
        "benchmark": "warm_invoke",
        "what": "latency of a warm synchronous invoke, client-side, back-to-back on one keep-alive connection",
        "memory_note": "CPU share is proportional to memory (1769 MB = 1 vCPU, as on AWS); 128 MB ~ 0.07 vCPU",
        "handler": "python3.12, returns its event",
        "payload_bytes": len(body),
        "n_per_target": {k: len(v) for k, v in totals.items()},
        "units": "ms",
        "lamina": lamina,
        "server_reported_duration_1769": {
            "what": "REPORT line `Duration` (LogType=Tail): from handing the event to the runtime until its "
                    "response, as the server measures it; the rest of raw_1769's latency is the API front end "
                    "(HTTP, SigV4 check, version lookup, result/log assembly) and the loopback round trip",
            **c.summary(report_ms)},
        "after_idle_raw_1769": {
            "what": "warm invoke after 250 ms idle (environment frozen after its idle grace, thawed by the invoke)",
            **c.summary(idle_ms)},
        "baseline": {
            "what": "minimal HTTP/1.1 keep-alive echo server on loopback (own process), same raw client, "
                    "same request (signed per request, same body); lowest p50 of three implementations",
            "chosen": best, **base},
        "echo_servers": echo_stats,
        "vs_baseline": {key: diff(key) for key in lamina},
        "signing_note": "the raw client signs every request with botocore SigV4Auth; signing_ms is that part, "
                        "included in the totals of both Lamina and the echo baseline (so it cancels in the "
                        "difference); without_signing_ms excludes it",
        "target": {"name": "warm raw-HTTP p50 within 1 ms of the echo baseline (1769 MB)",
                   "value_ms": round(raw_diff, 3), "met": raw_diff <= 1.0},
        "machine": machine,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    c.emit(result)


if __name__ == "__main__":
    main()
