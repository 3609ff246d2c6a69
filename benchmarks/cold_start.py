"""Cold start: end-to-end latency of an invoke that has to start a new environment.

Each sample: update the function's configuration (Description), wait until the update is
Successful, then time one synchronous invoke of a no-op Python 3.12 handler (MemorySize 1769 =
1 vCPU) from a raw keep-alive HTTP client (SigV4-signed per request, LogType=Tail). The REPORT
line's `Init Duration` is what the server says the environment start took.

Baseline, same N, interleaved in the same run: wall time of `python3 -c pass` as a subprocess,
with the same interpreter the sandbox runs (not the pyenv shim on PATH, which is a shell script).

A second, smaller series invokes a freshly created function each time (then deletes it): there
is no previous environment of that function to retire, which isolates the cost of retiring the
stale environment on the update path.
"""
from __future__ import annotations

import subprocess
import time

import _common as c

MEMORY_MB = c.ONE_VCPU_MB


def timed_cold_invoke(raw: c.RawClient) -> tuple[float, float | None, float | None]:
    status, headers, body, total, _sign = raw.invoke(b"{}")
    if status != 200:
        raise RuntimeError(f"invoke failed: {status} {body[:300]!r}")
    tail = c.log_result(headers)
    init = c.INIT_RE.search(tail)
    dur = c.DURATION_RE.search(tail)
    return total * 1000, float(init.group(1)) if init else None, float(dur.group(1)) if dur else None


def baseline_once(python: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    args = c.parser(__doc__.splitlines()[0], default_n=100, quick_n=10).parse_args()
    n = c.sample_count(args)
    budget = 20.0 if args.quick else 150.0
    c.watchdog(29 if args.quick else 178)
    started = time.monotonic()
    machine = c.machine()
    python = c.runtime_interpreter("python3.12")

    lam = c.Lamina()
    name = "bench-cold"
    lam.create_function(name, c.NOOP, MEMORY_MB)
    raw = c.RawClient(lam.port, name, log_tail=True)
    timed_cold_invoke(raw)            # the server's first environment ever: one-time costs, not counted
    baseline_once(python)

    client, init, duration, overhead, base, update_ms = [], [], [], [], [], []
    fresh_client, fresh_init = [], []
    not_cold = 0
    deadline = started + budget
    for i in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        lam.touch_configuration(name, f"cold sample {i}")
        update_ms.append((time.perf_counter() - t0) * 1000)
        total, init_ms, dur_ms = timed_cold_invoke(raw)
        if init_ms is None:
            not_cold += 1
        else:
            client.append(total)
            init.append(init_ms)
            overhead.append(total - init_ms)
        if dur_ms is not None:
            duration.append(dur_ms)
        base.append(baseline_once(python))
        if i % 4 == 0:                # the fresh-function series: a quarter of N
            fname = f"bench-fresh-{i}"
            lam.create_function(fname, c.NOOP, MEMORY_MB)
            fresh = c.RawClient(lam.port, fname, log_tail=True)
            total, init_ms, _ = timed_cold_invoke(fresh)
            fresh.close()
            if init_ms is not None:
                fresh_client.append(total)
                fresh_init.append(init_ms)
            lam.client.delete_function(FunctionName=fname)
    raw.close()
    lam.close()

    cs, bs, ins = c.summary(client), c.summary(base), c.summary(init)
    fs = c.summary(fresh_client)
    result = {
        "benchmark": "cold_start",
        "what": "client-side latency of a synchronous invoke that starts a new environment "
                "(no-op python3.12 handler), and the Init Duration the server reports",
        "memory_mb": MEMORY_MB,
        "memory_note": "CPU share is proportional to memory (1769 MB = 1 vCPU, as on AWS)",
        "client": "raw http.client keep-alive, SigV4 per request, LogType=Tail",
        "cold_start_trigger": "update_function_configuration(Description=...) before each sample",
        "n_requested": n,
        "n": len(client),
        "samples_not_cold": not_cold,
        "cold_invoke_client_ms": cs,
        "init_duration_ms": ins,
        "client_minus_init_ms": c.summary(overhead),
        "handler_duration_ms": c.summary(duration),
        "update_configuration_ms": c.summary(update_ms),
        "fresh_function": {
            "what": "cold invoke of a just-created function (no stale environment to retire first)",
            "cold_invoke_client_ms": fs,
            "init_duration_ms": c.summary(fresh_init),
            "update_path_p50_minus_fresh_p50_ms": round(cs["p50"] - fs["p50"], 3) if fs.get("n") and cs.get("n")
            else None,
        },
        "baseline": {"what": "`python3 -c pass` subprocess wall time, same N, interleaved",
                     "command": [python, "-c", "pass"], "wall_ms": bs},
        "ratio": {
            "client_p50/baseline_p50": c.ratio(cs.get("p50", 0), bs.get("p50", 0)),
            "client_p99/baseline_p99": c.ratio(cs.get("p99", 0), bs.get("p99", 0)),
            "init_p50/baseline_p50": c.ratio(ins.get("p50", 0), bs.get("p50", 0)),
            "init_p99/baseline_p99": c.ratio(ins.get("p99", 0), bs.get("p99", 0)),
        },
        "target": {"name": "cold start p50 <= 30 ms (client-side, update path)",
                   "value_ms": cs.get("p50"), "met": bool(cs.get("n")) and cs["p50"] <= 30.0},
        "truncated_by_time_budget": len(client) + not_cold < n,
        "machine": machine,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    c.emit(result)


if __name__ == "__main__":
    main()
