"""Integration tests for lamina.sandbox: real processes, real namespaces and cgroups.

Each test runs its own asyncio loop (pytest-asyncio is not used). Tests skip, with the
reason, when the host lacks what they need (bwrap, root, a cgroup controller...).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lamina.sandbox import Bind, BwrapSandbox, PlainSandbox, SandboxSpec, build_sandbox
from lamina.sandbox.bwrap_impl import bwrap_exit_status
from lamina.sandbox.cgroups import Cgroup, CgroupHierarchy, detect_hierarchy, parent_pid
from lamina.sandbox.cgroups_v2 import V2Hierarchy
from lamina.sandbox.plain_impl import translate_path, translate_value
from lamina.sandbox.probe import HostProbe, probe_host
from lamina.sandbox.process import TreeProcess
from lamina.sandbox.proctree import tree_pids

PARENT = f"lamina-test-{os.getpid()}"
PATH = "/usr/bin:/bin"
HOST_PYTHON = "/usr/bin/python3"
PYENV_PYTHON = "/root/.pyenv/versions/3.11.7"
IS_ROOT = os.geteuid() == 0


# ------------------------------------------------------------------ helpers

def spec(*argv: str, env: dict[str, str] | None = None, **kw: Any) -> SandboxSpec:
    return SandboxSpec(argv=argv, env={"PATH": PATH, **(env or {})}, **kw)


async def drain(proc: TreeProcess, timeout: float = 5.0) -> bytes:
    """Read the output pipe until EOF (the whole tree exited) or `timeout`."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(proc.output_fd, 65536)
        except BlockingIOError:
            await asyncio.sleep(0.005)
            continue
        if not chunk:
            break
        out += chunk
    return out


def read_available(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


async def run(sandbox: BwrapSandbox | PlainSandbox, s: SandboxSpec,
              timeout: float = 10.0) -> tuple[int, str, TreeProcess]:
    proc = await sandbox.start(s)
    try:
        out = await drain(proc, timeout)
        code = await asyncio.wait_for(proc.wait(), timeout)
    finally:
        await proc.kill()
    return code, out.decode(errors="replace"), proc


def cgroup_dirs(name: str) -> list[str]:
    found = []
    for root in ("/sys/fs/cgroup", *(f"/sys/fs/cgroup/{c}" for c in ("memory", "cpu", "pids", "freezer"))):
        path = os.path.join(root, PARENT, name)
        if os.path.isdir(path):
            found.append(path)
    return found


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def host() -> Iterator[HostProbe]:
    probe = probe_host(PARENT)
    yield probe
    if probe.cgroups is not None:
        probe.cgroups.remove_stale()
        probe.cgroups.remove_parent()


@pytest.fixture(scope="module")
def bwrap(host: HostProbe) -> BwrapSandbox:
    if host.bwrap_mode is None:
        pytest.skip(f"bubblewrap unusable here: {'; '.join(host.bwrap_errors)}")
    return BwrapSandbox(host.report("bwrap"), host.bwrap_config(), host.cgroups)


def need_controller(host: HostProbe, controller: str) -> CgroupHierarchy:
    if host.cgroups is None or controller not in host.cgroups.controllers:
        pytest.skip(f"no writable cgroup '{controller}' controller: {host.cgroup_warnings}")
    return host.cgroups


@pytest.fixture()
def hostdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="lamina-sbx-test-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ probe / report

def test_probe_reports_backend_and_limits(host: HostProbe) -> None:
    report = host.report("bwrap" if host.bwrap_mode else "plain")
    assert report.backend in ("bwrap", "plain")
    assert report.cgroup_version in ("v1", "v2", "none")
    if report.backend == "plain":
        assert report.degraded and any("no filesystem isolation" in w for w in report.warnings)
    else:
        assert {"mount", "pid", "ipc", "uts"} <= set(report.namespaces)
    if IS_ROOT and report.backend == "bwrap":
        assert report.unprivileged_uid == host.user.uid


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _join(cgroup: Cgroup, pid: int) -> None:
    for fd in cgroup.open_join_fds():
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)


def test_build_sandbox_removes_stale_cgroups(host: HostProbe) -> None:
    cgroups = need_controller(host, "memory")
    empty = cgroups.create("stale-empty")
    orphaned = cgroups.create("stale-orphan")
    owned = cgroups.create("in-use")
    # An orphan (its parent exited, so init adopted it), as a crashed Lamina would leave.
    starter = subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True)
    orphan = int(starter.stdout)
    _join(orphaned, orphan)
    # A process whose live parent is not us: another Lamina sharing the parent.
    keeper = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while not _children(keeper.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _join(owned, _children(keeper.pid)[0])
        sandbox = build_sandbox(PARENT)
        assert not cgroup_dirs(empty.name)
        if parent_pid(orphan) in (0, 1):             # no subreaper adopted it instead of init
            assert not cgroup_dirs(orphaned.name)
        assert cgroup_dirs(owned.name)               # left alone
        assert sandbox.report.backend == ("bwrap" if host.bwrap_mode else "plain")
    finally:
        keeper.kill()
        keeper.wait()
        for cgroup in (owned, orphaned):
            asyncio.run(cgroup.kill_all())
            asyncio.run(cgroup.remove())
    assert not cgroup_dirs(owned.name)


# ------------------------------------------------------------------ bwrap: basics

def test_env_cwd_and_output(bwrap: BwrapSandbox, hostdir: str) -> None:
    s = spec("sh", "-c", 'echo "foo=$FOO"; pwd; echo err >&2; env | cut -d= -f1',
             env={"FOO": "bar baz"}, binds=(Bind(hostdir, "/var/task"),), workdir="/var/task")
    code, out, _ = asyncio.run(run(bwrap, s))
    assert code == 0
    assert "foo=bar baz\n/var/task\nerr\n" in out
    names = set(out.split("err\n", 1)[1].split())
    assert {"PATH", "FOO"} <= names <= {"PATH", "FOO", "PWD", "SHLVL", "_"}   # host env cleared


def test_exit_status_and_signal(bwrap: BwrapSandbox) -> None:
    code, _, _ = asyncio.run(run(bwrap, spec("sh", "-c", "exit 7")))
    assert code == 7
    code, _, _ = asyncio.run(run(bwrap, spec("sh", "-c", "kill -TERM $$")))
    assert code == -signal.SIGTERM
    assert bwrap_exit_status(137) == -9 and bwrap_exit_status(1) == 1


def _host_uids(pids: list[int]) -> set[str]:
    """Real uids, seen from the host, of the non-bwrap processes among `pids`."""
    uids: set[str] = set()
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().startswith(b"/usr/bin/bwrap"):
                continue
        with open(f"/proc/{pid}/status") as f:
            uids.update(line.split()[1] for line in f if line.startswith("Uid:"))
    return uids


@pytest.mark.skipif(not IS_ROOT, reason="a non-root caller runs as its own uid (mapped in a userns)")
def test_runs_as_unprivileged_uid(bwrap: BwrapSandbox) -> None:
    async def host_view() -> set[str]:
        proc = await bwrap.start(spec("sh", "-c", "echo up; sleep 5"))
        await asyncio.wait_for(_read_some(proc), 5)
        uids = _host_uids(proc._cgroup.pids()) if proc._cgroup else set()
        await proc.kill()
        return uids

    uid = bwrap.config.user.uid
    code, out, _ = asyncio.run(run(bwrap, spec("id")))
    assert code == 0 and f"uid={uid}(sbx_user1051)" in out and "groups=990" in out
    if bwrap._cgroups is not None:
        assert asyncio.run(host_view()) == {str(uid)}      # the host sees uid 993 too


def test_host_paths_invisible(bwrap: BwrapSandbox, hostdir: str) -> None:
    script = ("for p in /root /work /home /old_root /var/lib /etc/shadow /etc/ssh "
              f"{hostdir}; do test -e $p && echo VISIBLE $p; done; ls /; echo done")
    code, out, _ = asyncio.run(run(bwrap, spec("sh", "-c", script)))
    assert code == 0 and "done" in out
    assert "VISIBLE" not in out, out
    assert set(out.split()[:-1]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32",
                                     "proc", "sbin", "tmp", "usr", "var"}


def test_root_filesystem_and_ro_bind_are_read_only(bwrap: BwrapSandbox, hostdir: str) -> None:
    rw = tempfile.mkdtemp(prefix="lamina-sbx-rw-")
    os.chmod(rw, 0o777)
    try:
        with open(os.path.join(hostdir, "code.txt"), "w") as f:
            f.write("hello")
        script = ("cat /var/task/code.txt; echo; "
                  "touch /var/task/new 2>/dev/null && echo RO-WRITABLE; "
                  "touch /etc/new /new 2>/dev/null && echo ROOT-WRITABLE; "
                  "echo out > /mnt/rw/made && echo rw-ok")
        s = spec("sh", "-c", script, binds=(Bind(hostdir, "/var/task"), Bind(rw, "/mnt/rw", read_only=False)))
        code, out, _ = asyncio.run(run(bwrap, s))
        assert code == 0, out
        assert "hello" in out and "rw-ok" in out
        assert "WRITABLE" not in out
        assert not os.path.exists(os.path.join(hostdir, "new"))
        with open(os.path.join(rw, "made")) as f:
            assert f.read() == "out\n"
    finally:
        shutil.rmtree(rw, ignore_errors=True)


def test_tmp_is_private_writable_and_sized(bwrap: BwrapSandbox) -> None:
    async def go() -> tuple[str, str]:
        writer = await bwrap.start(spec("sh", "-c", "echo secret > /tmp/mine && echo written && sleep 5",
                                        label="tmp-a"))
        first = b""
        while b"written" not in first:
            first += await asyncio.wait_for(_read_some(writer), 5)
        code, other, _ = await run(bwrap, spec("sh", "-c", "ls -A /tmp; echo listed", label="tmp-b"))
        await writer.kill()
        _, full, _ = await run(bwrap, spec(
            "sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=3 2>&1; df -k /tmp | tail -1",
            tmp_size_mb=1))
        return other, full

    other, full = asyncio.run(go())
    assert other.split() == ["listed"]
    assert "No space left" in full
    assert full.split()[-5] == "1024"        # df: 1024 1K-blocks


async def _read_some(proc: TreeProcess) -> bytes:
    while True:
        try:
            return os.read(proc.output_fd, 65536)
        except BlockingIOError:
            await asyncio.sleep(0.005)


def test_pid_namespace(bwrap: BwrapSandbox) -> None:
    code, out, _ = asyncio.run(run(bwrap, spec("sh", "-c", "echo self=$$; ls /proc | grep -c '^[0-9]'")))
    assert code == 0
    lines = out.split()
    assert int(lines[0].split("=")[1]) < 10
    assert int(lines[1]) < 10                  # only the sandbox's own few processes


def test_hostname(bwrap: BwrapSandbox) -> None:
    code, out, _ = asyncio.run(run(bwrap, spec("cat", "/proc/sys/kernel/hostname", hostname="fn-1")))
    assert (code, out) == (0, "fn-1\n")


@pytest.mark.skipif(not (IS_ROOT and os.path.isdir(PYENV_PYTHON)), reason=f"needs root and {PYENV_PYTHON}")
def test_bind_from_root_only_directory(bwrap: BwrapSandbox) -> None:
    if bwrap.config.mode != "setpriv":
        pytest.skip("only setpriv mode can bind sources the sandbox uid cannot reach")
    s = spec("/var/lang/bin/python3", "-c", "import sys, os; print(sys.version_info[:2], os.getuid())",
             binds=(Bind(PYENV_PYTHON, "/var/lang"),), env={"LD_LIBRARY_PATH": "/var/lang/lib"})
    code, out, _ = asyncio.run(run(bwrap, s))
    assert code == 0, out
    assert out.startswith("(3, 11)")


# ------------------------------------------------------------------ bwrap: limits

PY_ALLOC = "import sys; s = 'x' * ({mb} * 1024 * 1024); print('allocated', flush=True); {tail}"


@pytest.mark.skipif(not os.path.exists(HOST_PYTHON), reason=f"needs {HOST_PYTHON}")
def test_memory_limit_kills_and_reports_oom(bwrap: BwrapSandbox, host: HostProbe) -> None:
    need_controller(host, "memory")
    s = spec("python3", "-c", PY_ALLOC.format(mb=200, tail=""), memory_mb=64)
    code, out, proc = asyncio.run(run(bwrap, s))
    assert "allocated" not in out
    assert code == -signal.SIGKILL, out
    assert proc.oom_killed()
    assert proc.peak_memory_bytes() >= 60 * 1024 * 1024


@pytest.mark.skipif(not os.path.exists(HOST_PYTHON), reason=f"needs {HOST_PYTHON}")
def test_peak_memory_and_reset(bwrap: BwrapSandbox, host: HostProbe) -> None:
    cgroups = need_controller(host, "memory")

    async def go() -> tuple[int, int, int, bool]:
        proc = await bwrap.start(spec("python3", "-c", PY_ALLOC.format(
            mb=40, tail="del s; import time; time.sleep(5)"), memory_mb=256))
        out = b""
        while b"allocated" not in out:
            out += await asyncio.wait_for(_read_some(proc), 5)
        await asyncio.sleep(0.05)
        peak = proc.peak_memory_bytes()
        proc.reset_peak_memory()
        after_reset = proc.peak_memory_bytes()
        await proc.kill()
        return peak, after_reset, proc.peak_memory_bytes(), proc.oom_killed()

    peak, after_reset, final, oom = asyncio.run(go())
    assert peak >= 40 * 1024 * 1024
    if cgroups.memory_peak_exact:
        assert 0 < after_reset < peak
    assert final > 0 and not oom


def test_freeze_stops_and_thaw_resumes(bwrap: BwrapSandbox) -> None:
    async def go() -> tuple[bytes, bytes, bytes]:
        proc = await bwrap.start(spec("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done"))
        await asyncio.sleep(0.2)
        before = read_available(proc.output_fd)
        await proc.freeze()
        await asyncio.sleep(0.02)
        read_available(proc.output_fd)           # anything written just before the freeze
        await asyncio.sleep(0.3)
        frozen = read_available(proc.output_fd)
        await proc.thaw()
        await asyncio.sleep(0.2)
        after = read_available(proc.output_fd)
        await proc.kill()
        return before, frozen, after

    before, frozen, after = asyncio.run(go())
    assert before and after
    assert frozen == b""
    assert int(after.split()[0]) > int(before.split()[-1])


def test_kill_while_frozen(bwrap: BwrapSandbox) -> None:
    async def go() -> tuple[float, int | None]:
        proc = await bwrap.start(spec("sh", "-c", "echo up; sleep 60", label="frozen-kill"))
        await asyncio.wait_for(_read_some(proc), 5)
        await proc.freeze()
        t = time.perf_counter()
        await proc.kill()
        return time.perf_counter() - t, proc.returncode()

    took, code = asyncio.run(go())
    assert code is not None and code < 0
    assert took < 2


def test_kill_removes_tree_and_cgroup(bwrap: BwrapSandbox, host: HostProbe) -> None:
    async def go() -> tuple[list[str], list[str], int | None, list[int]]:
        proc = await bwrap.start(spec("sh", "-c", "sleep 60 & sleep 60 & echo up; wait", label="killme"))
        await asyncio.wait_for(_read_some(proc), 5)
        name = proc.cgroup_name or ""
        dirs = cgroup_dirs(name) if name else []
        pids = proc._cgroup.pids() if proc._cgroup else []
        await proc.kill()
        await proc.kill()                          # idempotent
        return dirs, (cgroup_dirs(name) if name else []), proc.returncode(), pids

    dirs, left, code, pids = asyncio.run(go())
    assert code is not None and code < 0
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]
    if host.cgroups is not None:
        assert len(dirs) >= 1
        assert left == []


CHILD_SCRIPT = """
import asyncio, os, sys
from lamina.sandbox.base import SandboxSpec
from lamina.sandbox.bwrap_impl import BwrapConfig, BwrapSandbox
from lamina.sandbox.base import IsolationReport

async def main():
    report = IsolationReport("bwrap", "none", (), (), None)
    sandbox = BwrapSandbox(report, BwrapConfig(mode=sys.argv[1]), None)
    proc = await sandbox.start(SandboxSpec(argv=("sleep", "60"), env={"PATH": "/usr/bin:/bin"}))
    print(proc.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_sandbox_dies_with_lamina(bwrap: BwrapSandbox) -> None:
    """A crashed Lamina must not leave sandboxes running (bwrap --die-with-parent)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD_SCRIPT, bwrap.config.mode],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        bwrap_pid = int(child.stdout.readline())
        tree = tree_pids(bwrap_pid)
        deadline = time.monotonic() + 5
        while len(tree) < 3 and time.monotonic() < deadline:     # bwrap, its pid 1, sleep
            time.sleep(0.01)
            tree = tree_pids(bwrap_pid)
        assert len(tree) == 3
        child.kill()
        child.wait()
        deadline = time.monotonic() + 3
        alive = tree
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [p for p in tree if os.path.exists(f"/proc/{p}") and
                     open(f"/proc/{p}/stat").read().split()[2] != "Z"]
        assert alive == []
    finally:
        child.kill()
        child.wait()


def test_cpu_limit_applied(bwrap: BwrapSandbox, host: HostProbe) -> None:
    cgroups = need_controller(host, "cpu")

    async def go() -> str:
        proc = await bwrap.start(spec("sleep", "5", cpu_millicores=250, pids_max=64))
        name, version = proc.cgroup_name, cgroups.version
        if version == "v1":
            with open(f"/sys/fs/cgroup/cpu/{PARENT}/{name}/cpu.cfs_quota_us") as f:
                value = f.read()
        else:
            with open(f"/sys/fs/cgroup/{PARENT}/{name}/cpu.max") as f:
                value = f.read()
        await proc.kill()
        return value

    assert asyncio.run(go()).split()[0] == "25000"


def test_start_latency(bwrap: BwrapSandbox) -> None:
    async def go() -> list[float]:
        times = []
        for _ in range(10):
            t = time.perf_counter()
            proc = await bwrap.start(spec("true"))
            await proc.wait()
            times.append(time.perf_counter() - t)
            await proc.kill()
        return sorted(times)

    times = asyncio.run(go())
    assert times[len(times) // 2] < 0.5       # generous: the host is shared


# ------------------------------------------------------------------ cgroup v2 driver

@pytest.fixture()
def v2_hierarchy() -> Iterator[V2Hierarchy]:
    root = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "/sys/fs/cgroup/unified"
    if not os.path.exists(os.path.join(root, "cgroup.procs")) or not os.access(root, os.W_OK):
        pytest.skip("no writable cgroup v2 hierarchy")
    if not os.path.exists(os.path.join(root, "cgroup.controllers")):
        pytest.skip("no cgroup v2 hierarchy")
    try:
        h = V2Hierarchy(root, PARENT + "-v2")
    except Exception as e:  # noqa: BLE001 - any failure means "not available here"
        pytest.skip(f"cgroup v2 unusable: {e}")
    yield h
    h.remove_stale()
    h.remove_parent()


def test_cgroup_v2_driver_freeze_and_kill(v2_hierarchy: V2Hierarchy, bwrap: BwrapSandbox) -> None:
    """On a hybrid host the v2 tree may have no controllers; freezer and kill still work."""
    if "freezer" not in v2_hierarchy.controllers:
        pytest.skip("cgroup v2 freezer unavailable (kernel < 5.2)")
    sandbox = BwrapSandbox(bwrap.report, bwrap.config, v2_hierarchy)

    async def go() -> tuple[bytes, bytes, int, bool]:
        proc = await sandbox.start(spec("sh", "-c", "while :; do echo t; sleep 0.01; done", label="v2"))
        await asyncio.sleep(0.1)
        await proc.freeze()
        read_available(proc.output_fd)
        await asyncio.sleep(0.2)
        frozen = read_available(proc.output_fd)
        await proc.thaw()
        await asyncio.sleep(0.1)
        after = read_available(proc.output_fd)
        peak = proc.peak_memory_bytes()            # sampled from /proc without a memory controller
        path = os.path.join(v2_hierarchy._parent, proc.cgroup_name or "")
        await proc.kill()
        return frozen, after, peak, os.path.exists(path)

    frozen, after, peak, still_there = asyncio.run(go())
    assert frozen == b"" and after
    assert peak > 0
    assert not still_there


# ------------------------------------------------------------------ plain backend

def test_translate_paths() -> None:
    mapping = [("/var/task", "/srv/code"), ("/var/lang", "/opt/py"), ("/tmp", "/tmp/x1")]
    assert translate_path("/var/task/app.py", mapping) == "/srv/code/app.py"
    assert translate_path("/var/taskforce", mapping) == "/var/taskforce"
    assert translate_value("/var/lang/bin:/usr/bin", mapping) == "/opt/py/bin:/usr/bin"
    assert translate_value("127.0.0.1:9001", mapping) == "127.0.0.1:9001"


def _plain(host: HostProbe, cgroups: bool) -> PlainSandbox:
    return PlainSandbox(host.report("plain"), host.cgroups if cgroups else None,
                        user=host.user if IS_ROOT else None)


def test_plain_translates_binds_and_env(host: HostProbe, hostdir: str) -> None:
    with open(os.path.join(hostdir, "hello.sh"), "w") as f:
        f.write('echo "hi from $(pwd) tmp=$TMPDIR code=$CODE"; touch /tmp/t && echo tmp-ok\n')
    s = spec("sh", "/var/task/hello.sh", binds=(Bind(hostdir, "/var/task"),), workdir="/var/task",
             env={"CODE": "/var/task/x:/usr/lib"})
    code, out, _ = asyncio.run(run(_plain(host, cgroups=False), s))
    assert code == 0, out
    assert f"hi from {hostdir}" in out and f"code={hostdir}/x:/usr/lib" in out
    assert "tmp=/" in out and "tmp-ok" in out


@pytest.mark.skipif(not IS_ROOT, reason="only root can drop to the sandbox uid")
def test_plain_runs_as_sandbox_uid_and_refuses_unreachable_binds(host: HostProbe) -> None:
    code, out, _ = asyncio.run(run(_plain(host, cgroups=False), spec("id", "-u")))
    assert (code, out.strip()) == (0, str(host.user.uid))
    with pytest.raises(PermissionError):
        asyncio.run(run(_plain(host, cgroups=False), spec("true", binds=(Bind("/root", "/var/x"),))))


@pytest.mark.skipif(not os.path.exists(HOST_PYTHON), reason=f"needs {HOST_PYTHON}")
def test_plain_rlimit_memory_and_sigstop_freeze(host: HostProbe) -> None:
    sandbox = _plain(host, cgroups=False)
    code, out, proc = asyncio.run(run(sandbox, spec("python3", "-c", PY_ALLOC.format(mb=200, tail=""),
                                                    memory_mb=64)))
    assert code == 1 and "MemoryError" in out
    assert not proc.oom_killed()               # rlimit failures are not OOM kills

    async def go() -> tuple[bytes, bytes]:
        p = await sandbox.start(spec("sh", "-c", "while :; do echo t; sleep 0.01; done"))
        await asyncio.sleep(0.1)
        await p.freeze()
        read_available(p.output_fd)
        await asyncio.sleep(0.2)
        frozen = read_available(p.output_fd)
        await p.thaw()
        await asyncio.sleep(0.1)
        after = read_available(p.output_fd)
        await p.kill()
        return frozen, after

    frozen, after = asyncio.run(go())
    assert frozen == b"" and after


@pytest.mark.skipif(not os.path.exists(HOST_PYTHON), reason=f"needs {HOST_PYTHON}")
def test_plain_with_cgroups_oom(host: HostProbe) -> None:
    need_controller(host, "memory")
    s = spec("python3", "-c", PY_ALLOC.format(mb=200, tail=""), memory_mb=64)
    code, _, proc = asyncio.run(run(_plain(host, cgroups=True), s))
    assert code == -signal.SIGKILL and proc.oom_killed()


def test_detect_hierarchy_bad_parent() -> None:
    with pytest.raises(ValueError):
        detect_hierarchy("../escape")
