"""Shared pieces of the benchmarks: a Lamina server with its own data dir, a raw keep-alive
SigV4 client, an echo-server baseline in a subprocess, and percentile summaries.

Everything talks to 127.0.0.1 only. Every process a benchmark starts is stopped on exit.
"""
from __future__ import annotations

import argparse
import atexit
import base64
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.helpers import LaminaServer, make_zip

ROLE = "arn:aws:iam::000000000000:role/r"
REGION = "us-east-1"
CREDS = Credentials("test", "test")
ONE_VCPU_MB = 1769          # CPU share is proportional to memory: 1769 MB = 1 vCPU

NOOP = "def handler(event, context):\n    return None\n"
# Returns its event; {"sleep": s} first sleeps s seconds (to hold environments open while warming).
ECHO = ("import time\n"
        "def handler(event, context):\n"
        "    if 'sleep' in event:\n"
        "        time.sleep(event['sleep'])\n"
        "    return event\n")

INIT_RE = re.compile(r"Init Duration: ([0-9.]+) ms")
DURATION_RE = re.compile(r"\tDuration: ([0-9.]+) ms")


# -- argument parsing and output ---------------------------------------------------------
def parser(description: str, default_n: int, quick_n: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=int, default=None, help=f"sample count (default {default_n}, --quick {quick_n})")
    p.add_argument("--quick", action="store_true", help="small run that finishes in well under 30 s")
    p.set_defaults(_default_n=default_n, _quick_n=quick_n)
    return p


def sample_count(args: argparse.Namespace) -> int:
    if args.n is not None:
        return max(1, int(args.n))
    return int(args._quick_n if args.quick else args._default_n)


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    """Progress goes to stderr: stdout carries exactly one JSON object."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# -- statistics --------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(percentile(values, 50), digits),
            "p99": round(percentile(values, 99), digits), "min": round(min(values), digits),
            "mean": round(statistics.fmean(values), digits), "max": round(max(values), digits)}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


# -- machine description -----------------------------------------------------------------
def machine() -> dict[str, Any]:
    try:
        with open("/proc/loadavg") as f:
            load = [float(x) for x in f.read().split()[:3]]
    except OSError:
        load = []
    return {"cpus": os.cpu_count(), "loadavg_at_start": load, "python": sys.version.split()[0]}


def runtime_interpreter(runtime: str = "python3.12") -> str:
    """The host interpreter Lamina bind-mounts for `runtime`: the honest `python3` for baselines
    (the `python3` on PATH here may be a pyenv shim, a shell script that would inflate the baseline)."""
    from lamina.runtimes.catalog import RuntimeCatalog
    from lamina.settings import load_settings
    s = load_settings()
    choice = RuntimeCatalog(s.pyenv_root, s.node_binary, s.python_fallback, s.runtime_map).resolve(runtime)
    if choice is not None and choice.prefix is not None:
        exe = choice.prefix / "bin" / Path(choice.executable).name
        if exe.exists():
            return str(exe)
    return os.path.realpath(shutil.which("python3") or sys.executable)


# -- cleanup -----------------------------------------------------------------------------
_cleanups: list[Callable[[], None]] = []


def on_exit(fn: Callable[[], None]) -> None:
    _cleanups.append(fn)


def _run_cleanups() -> None:
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            log(f"cleanup failed: {e!r}")


def _on_signal(signum: int, _frame: Any) -> None:
    _run_cleanups()
    sys.exit(128 + signum)


atexit.register(_run_cleanups)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def watchdog(seconds: float) -> None:
    """Hard bound on a benchmark's run time: clean up and exit if it is exceeded."""
    def fire(_signum: int, _frame: Any) -> None:
        log(f"watchdog: exceeded {seconds:.0f} s, giving up")
        _run_cleanups()
        os._exit(3)
    signal.signal(signal.SIGALRM, fire)
    signal.alarm(int(seconds))


# -- the product -------------------------------------------------------------------------
class Lamina:
    """`lamina serve` on a free loopback port with a throwaway data dir, plus helpers."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="lamina-bench-"))
        self.server = LaminaServer(self.tmp / "data", env={"LAMINA_KEEP_ALIVE_S": "300", **(env or {})})
        on_exit(self.close)
        self.server.start()
        self.port = self.server.port
        self.client = self.server.client()
        self._closed = False

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def create_function(self, name: str, code: str, memory_mb: int, timeout_s: int = 30) -> None:
        self.client.create_function(FunctionName=name, Runtime="python3.12", Handler="lambda_function.handler",
                                    Role=ROLE, Code={"ZipFile": make_zip({"lambda_function.py": code})},
                                    MemorySize=memory_mb, Timeout=timeout_s)
        self.client.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})

    def touch_configuration(self, name: str, description: str) -> None:
        """Any configuration update makes the next invoke start a new environment."""
        self.client.update_function_configuration(FunctionName=name, Description=description)
        self.client.get_waiter("function_updated_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 600})

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- a raw keep-alive HTTP client that signs each request --------------------------------
class RawClient:
    """http.client over one keep-alive connection; SigV4 with botocore, once per request.

    `invoke` returns (status, headers, body, total_s, sign_s): total includes signing."""

    def __init__(self, port: int, function: str, log_tail: bool = False, timeout: float = 60) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.path = f"/2015-03-31/functions/{function}/invocations"
        self.url = f"http://{self.host}{self.path}"
        self.log_tail = log_tail
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.signer = SigV4Auth(CREDS, "lambda", REGION)

    def sign(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Host": self.host}
        if self.log_tail:
            headers["X-Amz-Log-Type"] = "Tail"
        req = AWSRequest(method="POST", url=self.url, data=body, headers=headers)
        self.signer.add_auth(req)
        return dict(req.headers.items())

    def invoke(self, body: bytes) -> tuple[int, http.client.HTTPMessage, bytes, float, float]:
        t0 = time.perf_counter()
        headers = self.sign(body)
        t1 = time.perf_counter()
        self.conn.request("POST", self.path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        t2 = time.perf_counter()
        return resp.status, resp.headers, data, t2 - t0, t1 - t0

    def close(self) -> None:
        self.conn.close()


def log_result(headers: http.client.HTTPMessage) -> str:
    raw = headers.get("X-Amz-Log-Result")
    return base64.b64decode(raw).decode(errors="replace") if raw else ""


def payload(size: int) -> bytes:
    """A JSON object of exactly `size` bytes (>= 12)."""
    base = b'{"pad": ""}'
    return b'{"pad": "' + b"x" * max(0, size - len(base)) + b'"}'


# -- the echo baseline -------------------------------------------------------------------
class EchoServer:
    """benchmarks/_echo.py in its own process (like the Lamina server), `impl` picks the server."""

    def __init__(self, impl: str) -> None:
        self.impl = impl
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_echo.py")), "--impl", impl],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        on_exit(self.close)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(f"echo server {impl} did not start")
        self.port = int(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- processes and cgroups ---------------------------------------------------------------
CGROUP_GLOBS = ("/sys/fs/cgroup/memory/lamina/*/cgroup.procs",     # v1 (this host)
                "/sys/fs/cgroup/lamina/*/cgroup.procs",            # v2, unified at /sys/fs/cgroup
                "/sys/fs/cgroup/unified/lamina/*/cgroup.procs")    # v2 in a hybrid layout
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()       # fields from the 3rd (state) on


def parent_of(pid: int) -> int:
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return 0


def descends_from(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid == ancestor:
            return True
        pid = parent_of(pid)
        seen += 1
    return False


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        f = _stat_fields(pid)
        return (int(f[11]) + int(f[12])) / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def sandbox_cgroups(server_pid: int) -> dict[str, list[int]]:
    """cgroup dir -> pids, for the sandbox cgroups whose processes were started by `server_pid`
    (other Lamina servers on the same host have their own cgroups under the same parent)."""
    import glob
    found: dict[str, list[int]] = {}
    for pattern in CGROUP_GLOBS:
        for procs in glob.glob(pattern):
            try:
                with open(procs) as f:
                    pids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            if pids and any(descends_from(p, server_pid) for p in pids):
                found[os.path.dirname(procs)] = pids
        if found:
            break
    return found


def pss_kb(pid: int) -> int:
    """Proportional set size of one process, from /proc/<pid>/smaps_rollup (kB)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
