"""Integration tests for lamina.sandbox.zygote_impl: real zygotes, real namespaces and cgroups,
the real Python bootstrap against a real Runtime API endpoint.

Each test runs its own asyncio loop (no pytest-asyncio) and its own ZygoteSandbox, whose
zygotes it prewarms and closes. The same probe handler runs under the zygote and under plain
bwrap, and most of what it sees must be identical. Skips, with the reason, where the host
cannot run zygotes (not root, no cgroups, no bwrap setpriv mode...).
"""
from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from lamina.runtime_api.endpoint import RuntimeEndpoint
from lamina.runtime_api.session import Invocation, Outcome, RuntimeSession
from lamina.sandbox import Bind, BwrapSandbox, SandboxSpec, build_sandbox
from lamina.sandbox.base import SandboxProcess
from lamina.sandbox.cgroups import parent_pid
from lamina.sandbox.probe import HostProbe, probe_host
from lamina.sandbox.process import TreeProcess
from lamina.sandbox.zygote_eligibility import ZygoteReport, zygote_unavailable
from lamina.sandbox.zygote_impl import ZygoteSandbox

PARENT = f"lamina-test-zygote-{os.getpid()}"
PYENV = "/root/.pyenv/versions"
BOOTSTRAP_DIR = str(Path(__file__).resolve().parents[2] / "lamina" / "runtimes" / "bootstrap" / "python")
LD_PATH = "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
T = TypeVar("T")


def prefix(version: str) -> str | None:
    found = sorted(glob.glob(f"{PYENV}/{version}.*"),
                   key=lambda p: [int(x) if x.isdigit() else 0 for x in os.path.basename(p).split(".")])
    found = [p for p in found if os.access(f"{p}/bin/python{version}", os.X_OK)]
    return found[-1] if found else None


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def host() -> Iterator[HostProbe]:
    probe = probe_host(PARENT)
    reason = zygote_unavailable(probe.is_root, probe.bwrap_mode, probe.cgroups)
    if reason is not None:
        pytest.skip(f"zygotes unavailable here: {reason}")
    if prefix("3.11") is None:
        pytest.skip("no CPython 3.11 under " + PYENV)
    yield probe
    if probe.cgroups is not None:
        probe.cgroups.remove_parent()


@pytest.fixture()
def task_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lamina-zygote-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def sandboxes(host: HostProbe) -> tuple[ZygoteSandbox, BwrapSandbox]:
    bwrap = BwrapSandbox(host.report("bwrap"), host.bwrap_config(), host.cgroups)
    return ZygoteSandbox(bwrap, host.cgroups), bwrap


def python_spec(task: Path, version: str = "3.11", env: dict[str, str] | None = None, **kw: Any) -> SandboxSpec:
    lang = prefix(version)
    if lang is None:
        pytest.skip(f"no CPython {version} under {PYENV}")
    base = {
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
        "PWD": "/var/task", "HOME": "/tmp", "LD_LIBRARY_PATH": LD_PATH, "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime", "_HANDLER": "lambda_function.handler",
        "AWS_LAMBDA_FUNCTION_NAME": "zygote-test", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}", "SECRET_TOKEN": "s3cr3t",
    }
    return SandboxSpec(argv=(f"/var/lang/bin/python{version}", "/var/runtime/bootstrap.py"),
                       env={**base, **(env or {})},
                       binds=(Bind(str(task), "/var/task"), Bind(BOOTSTRAP_DIR, "/var/runtime"),
                              Bind(lang, "/var/lang")),
                       workdir="/var/task", hostname="lamina", label="zygote-test", **kw)


def write_handler(task: Path, source: str) -> None:
    (task / "lambda_function.py").write_text(source)


def with_sandbox(host: HostProbe, body: Callable[[ZygoteSandbox, BwrapSandbox], Awaitable[T]],
                 prewarm: list[SandboxSpec] | None = None) -> T:
    async def go() -> T:
        zygote, bwrap = sandboxes(host)
        try:
            problems = await zygote.prewarm(prewarm or [])
            assert problems == []
            return await body(zygote, bwrap)
        finally:
            await zygote.close()
    return asyncio.run(go())


class Running:
    """One sandboxed runtime and the Runtime API session it talks to."""

    def __init__(self, proc: SandboxProcess, session: RuntimeSession, endpoint: RuntimeEndpoint) -> None:
        self.proc, self.session, self.endpoint = proc, session, endpoint
        self.output = b""

    @classmethod
    async def start(cls, sandbox: ZygoteSandbox | BwrapSandbox, spec: SandboxSpec) -> Running:
        session = RuntimeSession()
        endpoint = RuntimeEndpoint(session)
        await endpoint.start()
        proc = await sandbox.start(replace(spec, env={**spec.env, "AWS_LAMBDA_RUNTIME_API": endpoint.address}))
        return cls(proc, session, endpoint)

    async def ready(self, timeout: float = 15.0) -> bool:
        """True once the runtime called /next, False if it exited first."""
        ready: asyncio.Future[Any] = asyncio.ensure_future(self.session.ready.wait())
        exited: asyncio.Future[Any] = asyncio.ensure_future(self.proc.wait())
        await asyncio.wait({ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        exited.cancel()
        return self.session.ready.is_set()

    async def invoke(self, event: Any, timeout: float = 15.0) -> Outcome | None:
        invocation = Invocation(f"req-{time.monotonic_ns()}", json.dumps(event).encode(),
                                int(time.time() * 1000 + timeout * 1000), "arn:aws:lambda:us-east-1:0:function:t")
        future = self.session.submit(invocation)
        exited: asyncio.Future[Any] = asyncio.ensure_future(self.proc.wait())
        await asyncio.wait({cast("asyncio.Future[Any]", future), exited}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        self.drain()
        return future.result() if future.done() else None

    def drain(self) -> bytes:
        while True:
            try:
                chunk = os.read(self.proc.output_fd, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            self.output += chunk
        return self.output

    async def stop(self) -> None:
        self.drain()
        self.session.close()
        await self.proc.kill()
        await self.endpoint.close()


def cgroup_name(proc: SandboxProcess) -> str:
    assert isinstance(proc, TreeProcess) and proc.cgroup_name is not None
    return proc.cgroup_name


def forked_by_zygote(zygote: ZygoteSandbox, proc: SandboxProcess) -> bool:
    return parent_pid(proc.pid) in zygote.zygote_pids().values()


async def invoke_once(sandbox: ZygoteSandbox | BwrapSandbox, spec: SandboxSpec,
                      event: Any = None) -> tuple[Any, Running]:
    run = await Running.start(sandbox, spec)
    try:
        assert await run.ready(), run.drain().decode(errors="replace")
        outcome = await run.invoke(event if event is not None else {})
        assert outcome is not None and not outcome.failed, (outcome, run.output.decode(errors="replace"))
        return json.loads(outcome.payload), run
    finally:
        await run.stop()


# ------------------------------------------------------------------ the bootstrap, served warm

HELLO = """
import os, sys
def handler(event, context):
    return {"hello": event.get("name", "world"), "version": "%d.%d" % sys.version_info[:2],
            "request": context.aws_request_id, "fn": context.function_name, "pid": os.getpid()}
"""


@pytest.mark.parametrize("version", ["3.8", "3.11", "3.13"])
def test_bootstrap_runs_handler_from_zygote(host: HostProbe, task_dir: Path, version: str) -> None:
    write_handler(task_dir, HELLO)
    spec = python_spec(task_dir, version)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> None:
        assert zygote.why_not(spec) is None
        run = await Running.start(zygote, spec)
        try:
            assert forked_by_zygote(zygote, run.proc)
            assert await run.ready(), run.drain()
            first = await run.invoke({"name": "zygote"})
            second = await run.invoke({"name": "again"})
        finally:
            await run.stop()
        assert first is not None and not first.failed, run.output
        assert second is not None and not second.failed, run.output
        result = json.loads(first.payload)
        assert result["hello"] == "zygote" and result["version"] == version
        assert result["fn"] == "zygote-test" and result["request"] == first.request_id
        assert result["pid"] == 2                         # pid 2 under a reaping pid 1, as in bwrap
        assert json.loads(second.payload)["hello"] == "again"
        assert await run.proc.wait() == -signal.SIGKILL

    with_sandbox(host, body, prewarm=[spec])


def test_handler_errors_and_logging(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, "import logging\n"
                            "def handler(event, context):\n"
                            "    logging.getLogger().warning('about to fail')\n"
                            "    print('printed')\n"
                            "    raise ValueError('nope')\n")
    spec = python_spec(task_dir)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[Outcome | None, bytes]:
        run = await Running.start(zygote, spec)
        try:
            assert forked_by_zygote(zygote, run.proc)
            assert await run.ready()
            outcome = await run.invoke({})
            await asyncio.sleep(0.05)
            return outcome, run.drain()
        finally:
            await run.stop()

    outcome, output = with_sandbox(host, body, prewarm=[spec])
    assert outcome is not None and outcome.error_type == "ValueError"
    error = json.loads(outcome.payload)
    assert error["errorMessage"] == "nope" and error["stackTrace"]
    assert all("/bootstrap.py" not in line for line in error["stackTrace"])
    text = output.decode()
    assert "printed" in text and "about to fail" in text and "[ERROR] ValueError: nope" in text


# ------------------------------------------------------------------ isolation, compared with bwrap

PROBE = r'''
import os, resource, socket, stat, sys, time

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return type(e).__name__ + ":" + str(e.errno)

def write(path):
    def go():
        with open(path, "w") as f:
            f.write("x")
    return attempt(go)

def fds():
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:            # the directory listdir had open
            continue
        out.append((int(fd), target.split(":")[0] if ":" in target else target))
    return sorted(out)

def mounts():
    out = []
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        fields = left.split()
        opts = ",".join(sorted(o for o in fields[5].split(",") if o in ("ro", "rw", "nosuid", "nodev", "noexec")))
        out.append([fields[4], right.split()[0], opts])
    return sorted(out)

def handler(event, context):
    old_umask = os.umask(0o22)
    tmp = os.statvfs("/tmp")
    return {
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
        "caps": [status(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")],
        "signals": [status(k) for k in ("SigBlk", "SigIgn")],
        "pid": [os.getpid(), os.getppid(), os.getsid(0), os.getpgid(0)],
        "proc": sorted(p for p in os.listdir("/proc") if p.isdigit()),
        "proc1_fd": attempt(lambda: os.listdir("/proc/1/fd")),
        "root": sorted(os.listdir("/")),
        "etc": sorted(os.listdir("/etc")),
        "dev": sorted(os.listdir("/dev")),
        "host_paths": [os.path.exists(p) for p in ("/root", "/work", "/home", "/etc/shadow", "/var/lib", "/sys",
                                                   "/run", "/newroot", event["host_marker"])],
        "tmp": [sorted(os.listdir("/tmp")), tmp.f_blocks * tmp.f_frsize, write("/tmp/x")],
        "writes": [write(p) for p in ("/var/task/x", "/var/lang/x", "/var/runtime/x", "/x", "/etc/x",
                                      "/usr/x", "/proc/sys/kernel/hostname")],
        "passwd": open("/etc/passwd").read(),
        "hostname": socket.gethostname(),
        "fds": fds(),
        "mounts": mounts(),
        "cgroup": sorted(line.split(":", 2)[2].strip() for line in open("/proc/self/cgroup")),
        "env": dict((k, v) for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"),
        "sys": [sys.executable, sys.prefix, sys.exec_prefix, sys.base_prefix, sys.argv, sys.path, str(sys.flags),
                sys.stdout.encoding, sys.stdout.line_buffering, sys.stderr.line_buffering, sys.getfilesystemencoding()],
        "cwd": os.getcwd(),
        "umask": old_umask,
        "rlimits": [resource.getrlimit(r) for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC,
                                                    resource.RLIMIT_DATA, resource.RLIMIT_STACK)],
        "tz": [time.tzname, time.timezone],
        "cmdline": open("/proc/self/cmdline").read().split("\0"),
        "main": sorted(vars(sys.modules["__main__"])),
        "dumpable": attempt(lambda: open("/proc/self/environ").read()),
        "environ": sorted(x.split("=")[0] for x in open("/proc/self/environ").read().split("\0") if x),
        "stdin": os.readlink("/proc/self/fd/0"),
    }
'''

# Fields that must be the same whether bwrap or the zygote built the sandbox.
SAME = ("ids", "caps", "signals", "pid", "proc", "proc1_fd", "root", "etc", "dev", "host_paths", "tmp", "writes",
        "passwd", "hostname", "fds", "cgroup", "env", "sys", "cwd", "umask", "rlimits", "tz", "cmdline", "dumpable",
        "stdin")


def test_isolation_matches_bwrap(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, PROBE)
    marker = tempfile.NamedTemporaryFile(prefix="lamina-host-marker-", dir="/tmp")
    spec = python_spec(task_dir, tmp_size_mb=64)
    event = {"host_marker": marker.name}

    async def body(zygote: ZygoteSandbox, bwrap: BwrapSandbox) -> tuple[Any, Any]:
        assert zygote.why_not(spec) is None
        from_zygote, run = await invoke_once(zygote, spec, event)
        from_bwrap, _ = await invoke_once(bwrap, spec, event)
        return from_zygote, from_bwrap

    with marker:
        seen, expected = with_sandbox(host, body, prewarm=[spec])
    # What the brief demands, checked directly on the zygote's sandbox:
    assert seen["ids"] == [993, 993, 990, 990, []]
    assert seen["caps"] == ["0" * 16] * 5 + ["1", "0"]
    assert seen["pid"][:2] == [2, 1] and seen["proc"] == ["1", "2"]
    assert seen["proc1_fd"].startswith("PermissionError")          # init is not ours to inspect
    assert seen["host_paths"] == [False] * 9
    assert seen["tmp"] == [[], 64 * 1024 * 1024, "ok"]
    assert all(w.startswith(("OSError:30", "PermissionError:13")) for w in seen["writes"]), seen["writes"]
    assert [fd for fd in seen["fds"]] == [[0, "/dev/null"], [1, "pipe"], [2, "pipe"], [3, "socket"]]  # 3: the API
    assert seen["env"]["SECRET_TOKEN"] == "s3cr3t" and seen["env"]["PWD"] == "/var/task"
    assert seen["hostname"] == "lamina" and seen["cwd"] == "/var/task"
    assert seen["sys"][:4] == ["/var/lang/bin/python3.11", "/var/lang", "/var/lang", "/var/lang"]
    # ...and everything else as under bwrap.
    for key in SAME:
        assert seen[key] == expected[key], key
    assert seen["mounts"] == expected["mounts"]
    assert seen["main"] == expected["main"]
    # /proc/self/environ: the spec's variables where the kernel lets init repoint it
    # (CAP_SYS_RESOURCE), else the zygote's start-up variables - never another function's.
    assert set(seen["environ"]) <= set(expected["environ"]) | {"HOME", "LANG", "LD_LIBRARY_PATH"}


def test_tmp_is_private_per_sandbox(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, "import os\n"
                            "def handler(event, context):\n"
                            "    if event.get('write'):\n"
                            "        open('/tmp/mine', 'w').write('1')\n"
                            "    return sorted(os.listdir('/tmp'))\n")
    spec = python_spec(task_dir)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[Any, Any]:
        one = await Running.start(zygote, spec)
        two = await Running.start(zygote, spec)
        try:
            assert forked_by_zygote(zygote, one.proc) and forked_by_zygote(zygote, two.proc)
            assert await one.ready() and await two.ready()
            a, b = await one.invoke({"write": True}), await two.invoke({})
            assert a is not None and b is not None
            return json.loads(a.payload), json.loads(b.payload)
        finally:
            await one.stop()
            await two.stop()

    assert with_sandbox(host, body, prewarm=[spec]) == (["mine"], [])


def test_pythonpath_is_applied_as_at_startup(host: HostProbe, task_dir: Path) -> None:
    (task_dir / "lib").mkdir()
    (task_dir / "lib" / "helper_mod.py").write_text("VALUE = 42\n")
    write_handler(task_dir, "import sys\n"
                            "def handler(event, context):\n"
                            "    import helper_mod\n"
                            "    return [helper_mod.VALUE, sys.path]\n")
    spec = python_spec(task_dir, env={"PYTHONPATH": "/var/task/lib"})

    async def body(zygote: ZygoteSandbox, bwrap: BwrapSandbox) -> tuple[Any, Any]:
        assert zygote.why_not(spec) is None
        run = await Running.start(zygote, spec)
        try:
            assert forked_by_zygote(zygote, run.proc) and await run.ready()
            outcome = await run.invoke({})
        finally:
            await run.stop()
        assert outcome is not None and not outcome.failed, run.output
        expected, _ = await invoke_once(bwrap, spec)
        return json.loads(outcome.payload), expected

    seen, expected = with_sandbox(host, body, prewarm=[spec])
    assert seen == expected and seen[0] == 42


# ------------------------------------------------------------------ limits, freezer, teardown

def test_memory_limit_kills_and_reports_oom(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, "def handler(event, context):\n"
                            "    blob = bytearray(300 * 1024 * 1024)\n"
                            "    return len(blob)\n")
    spec = python_spec(task_dir, memory_mb=64)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[Outcome | None, int, bool, int]:
        run = await Running.start(zygote, spec)
        try:
            assert forked_by_zygote(zygote, run.proc) and await run.ready()
            outcome = await run.invoke({})
            code = await asyncio.wait_for(run.proc.wait(), 10)
            return outcome, code, run.proc.oom_killed(), run.proc.peak_memory_bytes()
        finally:
            await run.stop()

    outcome, code, oom, peak = with_sandbox(host, body, prewarm=[spec])
    assert outcome is None
    assert code == -signal.SIGKILL and oom
    assert 32 * 1024 * 1024 < peak <= 64 * 1024 * 1024 + 4096 * 16


def test_freeze_stops_and_thaw_resumes(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, "def handler(event, context):\n    return 'pong'\n")
    spec = python_spec(task_dir)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[str, bool, str]:
        run = await Running.start(zygote, spec)
        try:
            assert forked_by_zygote(zygote, run.proc) and await run.ready()
            await run.proc.freeze()
            name = cgroup_name(run.proc)
            with open(f"/sys/fs/cgroup/freezer/{PARENT}/{name}/freezer.state") as f:
                state = f.read().strip()
            frozen = await run.invoke({}, timeout=0.5)            # queued, but nobody runs
            await run.proc.thaw()
            answered = asyncio.ensure_future(run.session._pending[next(iter(run.session._pending))])
            await asyncio.wait_for(answered, 10)
            return state, frozen is None, json.loads(answered.result().payload)
        finally:
            await run.stop()

    state, stalled, answer = with_sandbox(host, body, prewarm=[spec])
    assert state == "FROZEN" and stalled and answer == "pong"


def test_kill_removes_tree_cgroup_and_zombie(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, "import subprocess\n"
                            "def handler(event, context):\n"
                            "    subprocess.Popen(['sleep', '60'])\n"
                            "    return 'spawned'\n")
    spec = python_spec(task_dir)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[list[int], str, list[bool], str, bool]:
        run = await Running.start(zygote, spec)
        zygote_pid = parent_pid(run.proc.pid)
        assert await run.ready()
        outcome = await run.invoke({})
        assert outcome is not None and json.loads(outcome.payload) == "spawned"
        name = cgroup_name(run.proc)
        with open(f"/sys/fs/cgroup/pids/{PARENT}/{name}/cgroup.procs") as f:
            pids = [int(p) for p in f.read().split()]
        await run.stop()
        dirs = [os.path.isdir(f"/sys/fs/cgroup/{c}/{PARENT}/{name}") for c in ("memory", "cpu", "pids", "freezer")]
        children = ""
        for _attempt in range(100):          # the zygote reaps init once released
            with open(f"/proc/{zygote_pid}/task/{zygote_pid}/children") as f:
                children = " ".join(c for c in f.read().split() if int(c) not in zygote.spare_pids())
            if not children:
                break
            await asyncio.sleep(0.01)
        try:
            os.fstat(run.proc.output_fd)
            closed = False
        except OSError:
            closed = True
        return pids, children, dirs, str(zygote_pid in zygote.zygote_pids().values()), closed

    pids, children, dirs, zygote_alive, closed = with_sandbox(host, body, prewarm=[spec])
    assert len(pids) == 3                                  # init, runtime, sleep
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)
    assert dirs == [False] * 4 and children == "" and zygote_alive == "True" and closed


def test_sandboxes_die_with_lamina(host: HostProbe, task_dir: Path) -> None:
    """A crashed Lamina takes its zygotes, and they their sandboxes, with it."""
    write_handler(task_dir, HELLO)
    script = f"""
import asyncio, json, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from tests.integration.test_zygote import Running, python_spec, sandboxes
from lamina.sandbox.probe import probe_host
from pathlib import Path
async def main():
    zygote, _ = sandboxes(probe_host({PARENT!r}))
    spec = python_spec(Path({str(task_dir)!r}))
    await zygote.prewarm([spec])
    run = await Running.start(zygote, spec)
    assert await run.ready()
    print(json.dumps([list(zygote.zygote_pids().values())[0], run.proc.pid]), flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, "the child Lamina did not start a sandbox"
        zygote_pid, init_pid = json.loads(line)
        runtime_pid = int(open(f"/proc/{init_pid}/task/{init_pid}/children").read().split()[0])
        child.kill()
        child.wait()
        deadline = time.monotonic() + 5
        alive = [zygote_pid, init_pid, runtime_pid]
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [p for p in alive if os.path.exists(f"/proc/{p}") and
                     open(f"/proc/{p}/stat").read().rpartition(")")[2].split()[0] != "Z"]
        assert alive == []
    finally:
        child.kill()
        child.wait()


def cgroup_file(controller: str, name: str, filename: str) -> str:
    with open(f"/sys/fs/cgroup/{controller}/{PARENT}/{name}/{filename}") as f:
        return f.read().strip()


def leftover_cgroups() -> list[str]:
    return sorted(n for n in os.listdir(f"/sys/fs/cgroup/memory/{PARENT}")
                  if os.path.isdir(f"/sys/fs/cgroup/memory/{PARENT}/{n}"))


def test_spare_gets_the_specs_limits(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, HELLO)
    spec = python_spec(task_dir, memory_mb=200, cpu_millicores=250, pids_max=77)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[list[int], str, list[str], list[str]]:
        spares = zygote.spare_pids()
        run = await Running.start(zygote, spec)
        try:
            assert await run.ready()
            name = cgroup_name(run.proc)
            limits = [cgroup_file("memory", name, "memory.limit_in_bytes"),
                      cgroup_file("cpu", name, "cpu.cfs_quota_us"), cgroup_file("pids", name, "pids.max")]
            outcome = await run.invoke({"name": "spare"})
            assert outcome is not None and json.loads(outcome.payload)["hello"] == "spare"
        finally:
            await run.stop()
        await asyncio.sleep(0.3)                           # the next spare
        return spares + [run.proc.pid], name, limits, [str(p) for p in zygote.spare_pids()]

    (spare, used), name, limits, next_spares = with_sandbox(host, body, prewarm=[spec])
    assert spare == used and name.startswith("zygote-spare")
    assert limits == [str(200 * 1024 * 1024), "25000", "77"]
    assert len(next_spares) == 1 and next_spares[0] != str(used)
    assert leftover_cgroups() == []                        # close() removed the new spare too


@pytest.mark.parametrize("spares", [True, False])
def test_cancelled_starts_leave_nothing_behind(host: HostProbe, task_dir: Path, spares: bool) -> None:
    write_handler(task_dir, HELLO)
    spec = python_spec(task_dir)

    async def body(_: ZygoteSandbox, bwrap: BwrapSandbox) -> list[str]:
        zygote = ZygoteSandbox(bwrap, host.cgroups, spares=spares)
        try:
            assert await zygote.prewarm([spec]) == []
            zygote_pid = list(zygote.zygote_pids().values())[0]
            for delay in (0.0, 0.001, 0.002, 0.004, 0.008, 0.016):
                task = asyncio.ensure_future(zygote.start(spec))
                await asyncio.sleep(delay)
                task.cancel()
                try:
                    proc = await task
                    await proc.kill()
                except asyncio.CancelledError:
                    pass
            await asyncio.sleep(0.5)
            with open(f"/proc/{zygote_pid}/task/{zygote_pid}/children") as f:
                children = [c for c in f.read().split() if int(c) not in zygote.spare_pids()]
            assert children == []
        finally:
            await zygote.close()
        return leftover_cgroups()

    assert with_sandbox(host, body) == []


# ------------------------------------------------------------------ what the zygote does not serve

def test_other_specs_go_to_bwrap(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, HELLO)
    spec = python_spec(task_dir)
    shell = SandboxSpec(argv=("sh", "-c", "echo from-bwrap; id -u"), env={"PATH": "/usr/bin:/bin"})
    wrapped = replace(spec, env={**spec.env, "AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrapper"})
    warned = replace(spec, env={**spec.env, "PYTHONWARNINGS": "error"})
    node_like = replace(spec, argv=("/var/lang/bin/python3.11", "/var/runtime/other.py"))

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[str, int, list[str | None], bool]:
        proc = await zygote.start(shell)
        assert parent_pid(proc.pid) == os.getpid()           # bwrap is our own child
        code = await asyncio.wait_for(proc.wait(), 10)
        out = b""
        while True:
            try:
                chunk = os.read(proc.output_fd, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            if not chunk:
                break
            out += chunk
        await proc.kill()
        reasons = [zygote.why_not(s) for s in (shell, wrapped, warned, node_like)]
        run = await Running.start(zygote, warned)
        try:
            delegated = parent_pid(run.proc.pid) == os.getpid() and await run.ready()
        finally:
            await run.stop()
        return out.decode(), code, reasons, delegated

    out, code, reasons, delegated = with_sandbox(host, body, prewarm=[spec])
    assert code == 0 and out == "from-bwrap\n993\n"
    assert all(reasons) and "AWS_LAMBDA_EXEC_WRAPPER" in str(reasons[1]) and "PYTHONWARNINGS" in str(reasons[2])
    assert delegated


def test_child_setup_failure_falls_back_to_bwrap(host: HostProbe, task_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_handler(task_dir, HELLO)
    spec = python_spec(task_dir)
    plan = ZygoteSandbox._plan

    def broken_plan(self: ZygoteSandbox, *args: Any) -> dict[str, Any]:
        result = plan(self, *args)
        result["ops"].insert(0, ["no-such-op", "/x"])
        return result

    monkeypatch.setattr(ZygoteSandbox, "_plan", broken_plan)

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> bool:
        run = await Running.start(zygote, spec)
        try:
            return parent_pid(run.proc.pid) == os.getpid() and await run.ready()
        finally:
            await run.stop()

    assert with_sandbox(host, body, prewarm=[spec])


def test_zygote_started_lazily_and_restarted(host: HostProbe, task_dir: Path) -> None:
    write_handler(task_dir, HELLO)
    spec = python_spec(task_dir)

    async def served_by(zygote: ZygoteSandbox) -> str:
        run = await Running.start(zygote, spec)
        try:
            assert await run.ready()
            return "zygote" if forked_by_zygote(zygote, run.proc) else "bwrap"
        finally:
            await run.stop()

    async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> list[str]:
        seen = [await served_by(zygote)]                   # first use: bwrap while it starts
        assert await zygote.prewarm([spec]) == []
        seen.append(await served_by(zygote))
        first = list(zygote.zygote_pids().values())
        os.kill(first[0], signal.SIGKILL)
        await asyncio.sleep(0.1)
        seen.append(await served_by(zygote))               # noticed it died: bwrap, and a new one
        assert await zygote.prewarm([spec]) == []
        seen.append(await served_by(zygote))
        assert list(zygote.zygote_pids().values()) != first
        return seen

    assert with_sandbox(host, body) == ["bwrap", "zygote", "bwrap", "zygote"]


def test_prefix_writable_by_others_gets_no_zygote(host: HostProbe, task_dir: Path) -> None:
    """The zygote runs the prefix's code as root: a prefix others may write to is refused."""
    write_handler(task_dir, HELLO)
    real = prefix("3.11")
    assert real is not None
    fake = Path(tempfile.mkdtemp(prefix="lamina-zygote-prefix-"))
    try:
        (fake / "bin").mkdir()
        (fake / "bin" / "python3.11").symlink_to(f"{real}/bin/python3.11")
        fake.chmod(0o777)
        spec = python_spec(task_dir)
        spec = replace(spec, binds=tuple(Bind(str(fake), "/var/lang") if b.dest == "/var/lang" else b
                                         for b in spec.binds))

        async def body(zygote: ZygoteSandbox, _: BwrapSandbox) -> tuple[list[str], str | None, dict[str, int]]:
            return await zygote.prewarm([spec]), zygote.why_not(spec), zygote.zygote_pids()

        problems, reason, pids = with_sandbox(host, body)
        assert len(problems) == 1 and reason == "its zygote failed recently" and pids == {}
    finally:
        shutil.rmtree(fake, ignore_errors=True)


def test_build_sandbox_wraps_bwrap(host: HostProbe) -> None:
    auto = build_sandbox(PARENT)
    assert isinstance(auto, ZygoteSandbox)
    assert isinstance(auto.report, ZygoteReport) and auto.report.zygote == "python"
    assert auto.report.backend == "bwrap" and not auto.report.degraded
    plain_bwrap = build_sandbox(PARENT, prefer="bwrap")
    assert isinstance(plain_bwrap, BwrapSandbox) and not isinstance(plain_bwrap.report, ZygoteReport)
    assert isinstance(build_sandbox(PARENT, prefer="zygote"), ZygoteSandbox)


# ------------------------------------------------------------------ cold start: zygote vs bwrap

def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def test_cold_start_latency(host: HostProbe, task_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """start() -> the runtime's first /next, 20 times each; the numbers are printed."""
    write_handler(task_dir, HELLO)
    spec = python_spec(task_dir)
    rounds = 20

    async def cold(sandbox: ZygoteSandbox | BwrapSandbox) -> float:
        session = RuntimeSession()
        endpoint = RuntimeEndpoint(session)
        await endpoint.start()
        started = time.perf_counter()
        run = Running(await sandbox.start(replace(spec, env={**spec.env,
                                                             "AWS_LAMBDA_RUNTIME_API": endpoint.address})),
                      session, endpoint)
        try:
            assert await run.ready(), run.drain()
            return (time.perf_counter() - started) * 1000
        finally:
            await run.stop()

    async def body(zygote: ZygoteSandbox, bwrap: BwrapSandbox) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {"zygote": [], "bwrap": []}
        for _ in range(rounds):
            times["zygote"].append(await cold(zygote))
            times["bwrap"].append(await cold(bwrap))
        return times

    times = with_sandbox(host, body, prewarm=[spec])
    summary = {name: {"median_ms": round(statistics.median(v), 1), "p90_ms": round(_percentile(v, 0.9), 1)}
               for name, v in times.items()}
    with capsys.disabled():
        print(f"\ncold start to first /next over {rounds} starts: {json.dumps(summary)}")
    assert summary["zygote"]["median_ms"] < summary["bwrap"]["median_ms"] / 2
