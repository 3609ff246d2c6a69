"""Idle memory: proportional set size (PSS) per idle environment of a no-op Python function.

K overlapping invokes that sleep ~1 s make K environments of one python3.12 function exist; once
they are idle (and frozen), the PSS (/proc/<pid>/smaps_rollup) of every process in those
sandboxes' cgroups (/sys/fs/cgroup/memory/lamina/*/cgroup.procs on cgroup v1, else the v2
paths) is summed and divided by K. Only cgroups whose processes descend from this run's server
are counted: other Lamina servers on the host share the parent cgroup.

Baseline: PSS of one idle `python3 -c "import time; time.sleep(60)"` (the same interpreter the
sandbox runs) started as a plain subprocess, measured before the server starts. The same figure
for K such processes at once (sum / K) is given too: PSS splits shared pages among the processes
that map them, so K sandboxes are fairly compared with K plain processes.

--n is K (default 16, --quick 4). MemorySize 128 (memory size does not change what an idle
runtime touches; it only sets the limit).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from typing import Any

import _common as c

MEMORY_MB = 128
SETTLE_S = 1.5


def baseline(python: str, count: int) -> dict[str, Any]:
    procs = [subprocess.Popen([python, "-c", "import time; time.sleep(60)"]) for _ in range(count)]

    def kill_all() -> None:
        for p in procs:
            if p.poll() is None:
                p.kill()
    c.on_exit(kill_all)
    time.sleep(SETTLE_S)
    pss = [c.pss_kb(p.pid) for p in procs]
    rss = [c.rss_kb(p.pid) for p in procs]
    for p in procs:
        p.kill()
        p.wait()
    return {"processes": count, "pss_kb_per_process": round(sum(pss) / count, 1),
            "rss_kb_per_process": round(sum(rss) / count, 1)}


def role(cmd: str) -> str:
    if cmd.startswith("/usr/bin/bwrap") or "bwrap" in cmd.split(" ", 1)[0]:
        return "bwrap"
    if "bootstrap" in cmd or "python" in cmd:
        return "runtime"
    return cmd.split(" ", 1)[0] or "?"


def freezer_state(cgroup_dir: str) -> str:
    name = os.path.basename(cgroup_dir)
    for path in (f"/sys/fs/cgroup/freezer/lamina/{name}/freezer.state", os.path.join(cgroup_dir, "cgroup.freeze")):
        try:
            with open(path) as f:
                value = f.read().strip()
            return {"1": "FROZEN", "0": "THAWED"}.get(value, value)
        except OSError:
            continue
    return "unknown"


def cgroup_memory_kb(cgroup_dir: str) -> int | None:
    for f in ("memory.usage_in_bytes", "memory.current"):
        try:
            with open(os.path.join(cgroup_dir, f)) as fh:
                return int(fh.read()) // 1024
        except (OSError, ValueError):
            continue
    return None


def main() -> None:
    args = c.parser(__doc__.splitlines()[0], default_n=16, quick_n=4).parse_args()
    k = c.sample_count(args)
    c.watchdog(29 if args.quick else 178)
    started = time.monotonic()
    machine = c.machine()
    python = c.runtime_interpreter("python3.12")

    base_one = baseline(python, 1)
    base_k = baseline(python, k)

    lam = c.Lamina()
    name = "bench-idle"
    lam.create_function(name, c.ECHO, MEMORY_MB)
    server_pss_before = c.pss_kb(lam.pid)

    errors: list[str] = []

    def hold() -> None:
        client = c.RawClient(lam.port, name)
        status, _h, data, _t, _s = client.invoke(b'{"sleep": 1.0}')
        client.close()
        if status != 200:
            errors.append(f"{status} {data[:200]!r}")

    envs: dict[str, list[int]] = {}
    for _attempt in range(3):         # a late invoke may reuse an environment that just finished
        threads = [threading.Thread(target=hold) for _ in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        envs = c.sandbox_cgroups(lam.pid)
        if len(envs) >= k or errors:
            break
    time.sleep(SETTLE_S)              # idle: past the freeze grace, nothing running
    envs = c.sandbox_cgroups(lam.pid)
    server_pss_after = c.pss_kb(lam.pid)

    per_env_pss, per_env_rss, per_env_cg = [], [], []
    by_role: dict[str, list[int]] = {}
    states: dict[str, int] = {}
    processes = 0
    for cg, pids in envs.items():
        per_env_pss.append(sum(c.pss_kb(p) for p in pids))
        per_env_rss.append(sum(c.rss_kb(p) for p in pids))
        usage = cgroup_memory_kb(cg)
        if usage is not None:
            per_env_cg.append(usage)
        state = freezer_state(cg)
        states[state] = states.get(state, 0) + 1
        for p in pids:
            processes += 1
            by_role.setdefault(role(c.cmdline(p)), []).append(c.pss_kb(p))
    lam.close()

    count = len(envs)
    total_pss = sum(per_env_pss)
    pss_per_env_kb = total_pss / count if count else float("nan")
    pss_per_k_kb = total_pss / k
    result = {
        "benchmark": "idle_memory",
        "what": "PSS of all processes in the sandboxes' cgroups of K idle environments, divided by K",
        "memory_mb": MEMORY_MB,
        "k_requested": k,
        "environments_found": count,
        "invoke_errors": errors[:3],
        "processes_per_environment": round(processes / count, 2) if count else None,
        "freezer_states": states,
        "pss_mb_per_environment": round(pss_per_k_kb / 1024, 2),
        "pss_kb_per_environment": round(pss_per_k_kb, 1),
        "pss_kb_per_environment_found": round(pss_per_env_kb, 1),
        "pss_kb_by_process_role_median": {r: statistics.median(v) for r, v in by_role.items()},
        "rss_kb_per_environment_median": statistics.median(per_env_rss) if per_env_rss else None,
        "cgroup_memory_usage_kb_per_environment_median": statistics.median(per_env_cg) if per_env_cg else None,
        "server_pss_kb_per_environment": round((server_pss_after - server_pss_before) / max(1, count), 1),
        "server_note": "growth of the `lamina serve` process's own PSS per environment (its per-environment "
                       "Runtime API endpoint and bookkeeping); not in the sandbox figure",
        "baseline": {"what": "idle `python3 -c \"import time; time.sleep(60)\"` as a plain subprocess",
                     "command": [python, "-c", "import time; time.sleep(60)"],
                     "one_process": base_one, "k_processes": base_k},
        "ratio": {"per_env/baseline_one": c.ratio(pss_per_k_kb, base_one["pss_kb_per_process"]),
                  "per_env/baseline_k": c.ratio(pss_per_k_kb, base_k["pss_kb_per_process"])},
        "target": {"name": "idle PSS <= 15 MB per environment", "value_mb": round(pss_per_k_kb / 1024, 2),
                   "met": count >= k and pss_per_k_kb <= 15 * 1024},
        "machine": machine,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    c.emit(result)


if __name__ == "__main__":
    main()
