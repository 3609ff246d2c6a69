"""Run every benchmark (each in its own process, one after another) and print one combined JSON.

`--quick` is passed through. Progress goes to stderr; stdout carries only the combined JSON.
Exit status 0 when every benchmark ran (targets missed are results, not failures), 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("cold_start", "warm_invoke", "throughput", "idle_memory")


def run(name: str, quick: bool) -> tuple[dict[str, Any] | None, str | None, float]:
    cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if quick else [])
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, check=False, timeout=45 if quick else 200, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return None, "timed out", time.monotonic() - started
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        return None, f"exit status {proc.returncode}", elapsed
    try:
        return json.loads(proc.stdout), None, elapsed
    except ValueError as e:
        return None, f"output is not JSON: {e}", elapsed


def targets(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, res in results.items():
        t = res.get("target")
        if t:
            value = next((v for k, v in t.items() if k.startswith("value")), None)
            out[name] = {"target": t["name"], "value": value, "met": t["met"]}
    return out


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures worth reading first, each next to its same-run baseline."""
    h: dict[str, Any] = {}
    if "cold_start" in results:
        r = results["cold_start"]
        h["cold_start"] = {"client_p50_ms": r["cold_invoke_client_ms"].get("p50"),
                           "client_p99_ms": r["cold_invoke_client_ms"].get("p99"),
                           "init_duration_p50_ms": r["init_duration_ms"].get("p50"),
                           "baseline_python_c_pass_p50_ms": r["baseline"]["wall_ms"].get("p50"),
                           "ratio_p50": r["ratio"]["client_p50/baseline_p50"],
                           "ratio_p99": r["ratio"]["client_p99/baseline_p99"],
                           "fresh_function_client_p50_ms": r["fresh_function"]["cold_invoke_client_ms"].get("p50")}
    if "warm_invoke" in results:
        r = results["warm_invoke"]
        lam, base = r["lamina"], r["baseline"]
        h["warm_invoke"] = {
            **{f"{k}_p50_ms": v["p50"] for k, v in lam.items()},
            **{f"{k}_p99_ms": v["p99"] for k, v in lam.items()},
            "echo_baseline": base["chosen"], "echo_p50_ms": base["p50"], "echo_p99_ms": base["p99"],
            "raw_1769_p50_minus_echo_ms": r["vs_baseline"]["raw_1769"]["p50_minus_baseline_ms"],
            "signing_p50_ms": lam["raw_1769"]["signing_ms"]["p50"],
            "signing_share_of_raw_1769_p50": lam["raw_1769"]["signing_share_of_p50"]}
    if "throughput" in results:
        r = results["throughput"]
        h["throughput"] = {
            "invokes_per_s_by_concurrency": {str(lv["concurrency"]): lv["lamina"]["invokes_per_s"]
                                             for lv in r["levels"]},
            "echo_per_s_by_concurrency": {str(lv["concurrency"]): lv["baseline_echo"]["invokes_per_s"]
                                          for lv in r["levels"]},
            "peak": r["peak"]}
    if "idle_memory" in results:
        r = results["idle_memory"]
        h["idle_memory"] = {"pss_mb_per_environment": r["pss_mb_per_environment"],
                            "environments": r["environments_found"],
                            "baseline_one_python_pss_mb": round(r["baseline"]["one_process"]["pss_kb_per_process"]
                                                                / 1024, 2),
                            "ratio_vs_one": r["ratio"]["per_env/baseline_one"],
                            "ratio_vs_k": r["ratio"]["per_env/baseline_k"]}
    return h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(BENCHMARKS))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    elapsed: dict[str, float] = {}
    for name in names:
        sys.stderr.write(f"== {name}{' --quick' if args.quick else ''}\n")
        sys.stderr.flush()
        res, err, secs = run(name, args.quick)
        elapsed[name] = round(secs, 1)
        if res is None:
            failures[name] = err or "failed"
        else:
            results[name] = res
    combined = {"quick": args.quick, "headline": headline(results), "targets": targets(results),
                "failures": failures, "elapsed_s": elapsed, "results": results}
    sys.stdout.write(json.dumps(combined, indent=2) + "\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
