"""ZygoteSandbox: Python runtimes forked from a warm per-interpreter zygote; bwrap for the rest.

A cold start through bwrap costs bwrap + setpriv + a fresh interpreter + the bootstrap's
imports and compilation (~100-150 ms here). For specs that run the Python bootstrap this
wrapper instead asks a long-lived *zygote* - one per interpreter prefix (and start-up
environment) that has already started `/var/lang/bin/python3.X /var/runtime/bootstrap.py`'s
interpreter, imported what the bootstrap needs and compiled it, but run no user code - to
fork a child that makes itself the sandbox bwrap would have built and continues into the
bootstrap without an exec. Every other spec (other runtimes, AWS_LAMBDA_EXEC_WRAPPER,
PYTHON*/LD_* variables that change interpreter start-up, ...) goes to the wrapped
`BwrapSandbox` unchanged, as do all specs of a key while its zygote starts (in the background,
on first use or after it died) or after it failed. The child side is
lamina/sandbox/zygote_child.py (standard library only: it runs under the function's Python).

Process tree per sandbox: Lamina -> zygote (one per key) -> init (pid 1 of a new pid namespace;
the `pid` of the returned process, Lamina's "first process") -> runtime (pid 2). Init plays
bwrap's pid 1: it reaps, and exits with the runtime's status (128+n for a signal) once the
runtime exits, which ends the namespace.

What the child builds is derived from `bwrap_options()` itself - the very option list bwrap
would get - translated into mount operations (`zygote_plan`); an option the translation does
not know makes the spec go to bwrap. Bind sources travel as detached mount trees cloned here
(open_tree + mount_setattr), so the zygote itself sees no host file but the system
directories and the interpreter prefix, and cannot be made to open one.

A start has two phases, so that the slow part - moving init and runtime into the cgroup,
whose first cgroup.procs write waits for an RCU grace period on cgroup v1 - overlaps the rest:
 1. fork request to the zygote (control socket, below): the cgroup.procs fds and one end of a
    fresh socketpair, the child's private *channel*. The zygote forks init, init forks the
    runtime and joins the cgroup with it.
 2. on the channel, straight to the runtime (the zygote never sees it): a memfd with the spec,
    the output pipe, a "ready" pipe and the mount trees. The runtime builds its root, waits
    for init's "joined", drops privileges, writes one byte to the ready pipe and runs the
    bootstrap; EOF on the ready pipe instead means setup failed (the reason is on the output
    pipe or the channel) and the spec is started through bwrap.
With spares on, each zygote keeps one child that did phase 1 ahead of time into a cgroup of
its own ("zygote-spare", generic limits); a start then sets the spec's limits on that cgroup
and only does phase 2, and a new spare is forked right after.

Control protocol (SOCK_SEQPACKET socketpair; the zygote's end is fd 3 of the zygote only -
children close it before anything else):
    zygote -> Lamina   b"Z" + JSON hello, once ready
    Lamina -> zygote   b"F" + SCM_RIGHTS [request memfd, channel, cgroup.procs fds...]
    zygote -> Lamina   b"P<pid>" (or b"E<error>"), in request order
    Lamina -> zygote   b"R<pid>": reap that child (held as a zombie until then, so its pid
                       cannot be reused while Lamina still signals it or reads its status)
The zygote never reads a spec, so no secret of one function ever lands in memory that later
sandboxes inherit. Lamina reads init's exit status from /proc/<pid>/stat (field 52) of the
zombie the zygote holds. When a zygote dies, its sandboxes die with it (parent-death signal).
"""
from __future__ import annotations

import array
import asyncio
import collections
import ctypes
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

from lamina.sandbox.base import IsolationReport, SandboxProcess, SandboxSpec
from lamina.sandbox.bwrap_impl import SYSTEM_DIRS, BwrapSandbox, bwrap_exit_status, bwrap_options
from lamina.sandbox.cgroups import Cgroup, CgroupError, CgroupHierarchy
from lamina.sandbox.launch import (
    Launch,
    check_spec,
    fallback_rlimits,
    make_output_pipe,
    memfd_with,
    prepare_cgroup,
    spawn,
)
from lamina.sandbox.process import TreeProcess
from lamina.sandbox.zygote_child import DEV_NODES, MAX_FDS, PIVOT_ROOT

log = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("zygote_child.py")
BOOTSTRAP = "/var/runtime/bootstrap.py"
PYTHON_RE = re.compile(r"/var/lang/bin/python3\.(\d+)")
MIN_MINOR = 8
# Read by the interpreter or the dynamic loader at start-up: a zygote starts with exactly
# these values of the spec (they are part of its key), so its children match a fresh start.
STARTUP_VARS = ("HOME", "LANG", "LANGUAGE", "LD_LIBRARY_PATH")
EMULATED_VARS = ("PYTHONPATH",)           # applied in the child as start-up would have
# Modules the zygote imports before forking: the bootstrap's own imports and what its first
# requests pull in lazily. Never user code.
WARM_MODULES = ("json", "logging", "socket", "time", "importlib", "importlib.machinery", "types",
                "traceback", "linecache", "tokenize", "urllib.parse", "encodings.idna", "selectors")
# The zygote's own root needs only what the dynamic loader and interpreter start-up read (every
# mount in it is copied by each child's unshare(CLONE_NEWNS)); sandboxes get all of ETC_FILES.
ZYGOTE_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
START_TIMEOUT = 15.0          # a zygote's own start (interpreter + imports + compile)
REPLY_TIMEOUT = 5.0           # the zygote answering one fork request
READY_TIMEOUT = 10.0          # a child from fork to "about to run the bootstrap"
RETRY_AFTER = 30.0            # a zygote that failed to start is not retried for this long
MAX_SETUP_FAILURES = 3        # consecutive child setup failures before a key goes to bwrap
SPARE_DELAY = 0.01            # a used spare is replaced this long after
SPARE_LABEL = "zygote-spare"  # a spare's cgroup: no limits until a spec's are set (only lowered)


class ZygoteError(RuntimeError):
    """The zygote could not be started or did not answer."""


class NotServable(ValueError):
    """The spec needs something the zygote does not reproduce: bwrap runs it."""


@dataclass(frozen=True)
class ZygoteReport(IsolationReport):
    """The bwrap report plus what the zygote adds: "python" when Python runtimes start from
    zygotes, "unavailable: <why>" when this host cannot have them, "" when not applicable."""

    zygote: str = ""


def zygote_report(report: IsolationReport, zygote: str) -> ZygoteReport:
    return ZygoteReport(**{f.name: getattr(report, f.name) for f in fields(IsolationReport)}, zygote=zygote)


def zygote_unavailable(is_root: bool, bwrap_mode: str | None, cgroups: CgroupHierarchy | None) -> str | None:
    """Why this host cannot run zygotes (None when it can)."""
    if not is_root:
        return "Lamina does not run as root"
    if bwrap_mode != "setpriv":
        return "bwrap does not run in setpriv mode"
    if cgroups is None:
        return "no writable cgroup hierarchy"
    if os.uname().machine not in PIVOT_ROOT:
        return f"unsupported architecture {os.uname().machine}"
    for ns in ("mnt", "pid", "ipc", "uts"):
        if not os.path.exists(f"/proc/self/ns/{ns}"):
            return f"no {ns} namespaces"
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        return "no pidfd support"
    return MountTrees().works()


def with_zygote(bwrap: BwrapSandbox, cgroups: CgroupHierarchy | None, *,
                required: bool = False) -> ZygoteSandbox | BwrapSandbox:
    """A `ZygoteSandbox` around `bwrap` when the host allows it, else `bwrap` itself with a
    report saying why not (raises instead when `required`)."""
    reason = zygote_unavailable(os.geteuid() == 0, bwrap.config.mode, cgroups)
    if reason is None:
        return ZygoteSandbox(bwrap, cgroups)
    if required:
        raise RuntimeError(f"zygote sandbox unavailable: {reason}")
    log.info("sandbox: Python zygotes unavailable (%s); every runtime starts through bwrap", reason)
    bwrap.report = zygote_report(bwrap.report, f"unavailable: {reason}")
    return bwrap


# ---------------------------------------------------------------- servability and keys

def _bind(spec: SandboxSpec, dest: str) -> list[str]:
    return [b.source for b in spec.binds if b.dest.rstrip("/") == dest]


def why_not(spec: SandboxSpec) -> str | None:
    """Why the zygote would not run `spec` the way bwrap does (None: it can)."""
    argv = spec.argv
    if len(argv) < 2 or argv[1] != BOOTSTRAP:
        return f"not the Python bootstrap ({' '.join(argv[:2])})"
    match = PYTHON_RE.fullmatch(argv[0])
    if match is None or int(match.group(1)) < MIN_MINOR:
        return f"interpreter {argv[0]} is not a /var/lang/bin/python3.{MIN_MINOR}+"
    lang, runtime = _bind(spec, "/var/lang"), _bind(spec, "/var/runtime")
    if len(lang) != 1 or len(runtime) != 1:
        return "needs exactly one bind at /var/lang and one at /var/runtime"
    if not os.access(os.path.join(lang[0], "bin", os.path.basename(argv[0])), os.X_OK):
        return f"{argv[0]} is missing from {lang[0]}"
    for key in spec.env:
        if key == "AWS_LAMBDA_EXEC_WRAPPER":
            return "AWS_LAMBDA_EXEC_WRAPPER wraps the runtime's command"
        if key in EMULATED_VARS or key in STARTUP_VARS:
            continue
        if key.startswith(("PYTHON", "LD_", "MALLOC_")) or key in ("GLIBC_TUNABLES", "LOCPATH"):
            return f"{key} changes interpreter start-up"
    if len(spec.binds) > MAX_FDS - 40:
        return "too many binds"
    return None


@dataclass(frozen=True)
class ZygoteKey:
    prefix: str                             # host path bound at /var/lang
    executable: str                         # /var/lang/bin/python3.X
    env: tuple[tuple[str, str], ...]        # STARTUP_VARS and LC_* of the spec

    @classmethod
    def of(cls, spec: SandboxSpec) -> ZygoteKey:
        env = tuple(sorted((k, v) for k, v in spec.env.items() if k in STARTUP_VARS or k.startswith("LC_")))
        return cls(os.path.realpath(_bind(spec, "/var/lang")[0]), spec.argv[0], env)

    def host_python(self) -> str:
        return os.path.join(self.prefix, "bin", os.path.basename(self.executable))

    def untrusted_paths(self) -> list[str]:
        """The zygote runs the prefix's interpreter, stdlib and site-packages (.pth files) as
        root, where bwrap only ever runs them as the sandbox uid: its main paths must belong to
        root and be writable by no one else. (Files below them are not each checked.)"""
        name = os.path.basename(self.executable)
        lib = os.path.join(self.prefix, "lib", name)
        paths = [self.prefix, os.path.join(self.prefix, "bin"), self.host_python(), os.path.join(self.prefix, "lib"),
                 lib, os.path.join(lib, "lib-dynload"), os.path.join(lib, "site-packages"), os.path.join(lib, "os.py")]
        bad = []
        for path in paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if st.st_uid != 0 or st.st_mode & 0o022:
                bad.append(path)
        return bad


# ---------------------------------------------------------------- detached mount trees

SYS_OPEN_TREE, SYS_MOUNT_SETATTR = 428, 442          # the same on every architecture
OPEN_TREE_CLONE, AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = 1, -100, 0x1000, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MS_SLAVE = 1 << 19


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class MountTrees:
    """Clones of host paths as detached mount trees (open_tree(OPEN_TREE_CLONE)), the only
    kind of mount another mount namespace may attach: a sandbox child gets these fds and
    move_mount()s them into its root. Flags are set here, recursively, the way bwrap remounts
    a bind and its submounts (existing flags kept); propagation becomes slave, as in bwrap."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long

    def clone(self, path: str, attr_set: int, recursive: bool = True) -> int:
        rec = AT_RECURSIVE if recursive else 0
        fd = self._libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), ctypes.c_char_p(path.encode()),
                                ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | rec))
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"open_tree {path}: {os.strerror(errno)}")
        attr = _MountAttr(attr_set, 0, MS_SLAVE, 0)
        if self._libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(fd), ctypes.c_char_p(b""),
                              ctypes.c_uint(AT_EMPTY_PATH | rec), ctypes.byref(attr),
                              ctypes.c_size_t(ctypes.sizeof(attr))) < 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise OSError(errno, f"mount_setattr {path}: {os.strerror(errno)}")
        return int(fd)

    def works(self) -> str | None:
        try:
            os.close(self.clone("/usr", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, recursive=False))
        except OSError as e:
            return f"detached mounts unsupported ({e})"
        return None


# ---------------------------------------------------------------- the spec as mount operations

class FdList:
    """The fds of one fork request, referred to by index; closes the ones it opened."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self._owned: list[int] = []

    def add(self, fd: int, *, owned: bool = True) -> int:
        self.fds.append(fd)
        if owned:
            self._owned.append(fd)
        return len(self.fds) - 1

    def own(self, fd: int) -> None:
        """Close `fd` with the others (whether or not it is in the list)."""
        self._owned.append(fd)

    def close(self) -> None:
        for fd in self._owned:
            try:
                os.close(fd)
            except OSError:
                pass
        self._owned.clear()


def zygote_plan(options: list[str], fds: FdList, trees: MountTrees) -> dict[str, Any]:
    """Translate bwrap options (as `bwrap_options` builds them, setpriv mode) into the child's
    mount operations, cloning every bind source as a detached mount tree in `fds`."""
    ops: list[list[Any]] = []
    plan: dict[str, Any] = {"hostname": "sandbox", "chdir": "/", "env": {}, "cgroupns": None, "ops": ops}
    unshared: set[str] = set()
    perms: int | None = None
    size: int | None = None
    args = iter(options)

    def arg() -> str:
        try:
            return next(args)
        except StopIteration:
            raise NotServable("bwrap option without its argument") from None

    for opt in args:
        if opt in ("--unshare-pid", "--unshare-ipc", "--unshare-uts"):
            unshared.add(opt.removeprefix("--unshare-"))
        elif opt in ("--unshare-cgroup-try", "--unshare-cgroup"):
            plan["cgroupns"] = "try" if opt.endswith("-try") else "require"
        elif opt == "--hostname":
            plan["hostname"] = arg()
        elif opt in ("--die-with-parent", "--new-session"):
            pass                                   # what the child always does
        elif opt in ("--cap-drop", "--cap-add"):
            arg()                                  # the child ends with none, as setpriv leaves it
        elif opt == "--perms":
            perms = int(arg(), 8)
            continue
        elif opt == "--size":
            size = int(arg())
            continue
        elif opt == "--dir":
            ops.append(["dir", arg(), 0o755 if perms is None else perms])
        elif opt in ("--ro-bind", "--bind"):
            source, dest = arg(), arg()
            flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (MOUNT_ATTR_RDONLY if opt == "--ro-bind" else 0)
            ops.append(["tree", dest, fds.add(trees.clone(source, flags)), os.path.isdir(source)])
        elif opt == "--symlink":
            target, dest = arg(), arg()
            ops.append(["symlink", dest, target])
        elif opt == "--ro-bind-data":
            fd, dest = int(arg()), arg()
            ops.append(["data", dest, fds.add(fd, owned=False), 0o600 if perms is None else perms])
        elif opt == "--proc":
            ops.append(["proc", arg()])
        elif opt == "--dev":
            nodes = {n: fds.add(trees.clone(f"/dev/{n}", MOUNT_ATTR_NOSUID, recursive=False))
                     for n in DEV_NODES if os.path.exists(f"/dev/{n}")}
            ops.append(["dev", arg(), nodes])
        elif opt == "--tmpfs":
            ops.append(["tmpfs", arg(), 0o755 if perms is None else perms, size])
            size = None
        elif opt == "--remount-ro":
            ops.append(["remount-ro", arg()])
        elif opt == "--chdir":
            plan["chdir"] = arg()
        elif opt == "--clearenv":
            plan["env"] = {}
        elif opt == "--setenv":
            key, value = arg(), arg()
            plan["env"][key] = value
        elif opt == "--unsetenv":
            plan["env"].pop(arg(), None)
        else:
            raise NotServable(f"bwrap option {opt} has no zygote equivalent")
        if perms is not None and opt not in ("--dir", "--ro-bind-data", "--tmpfs"):
            raise NotServable(f"--perms before {opt}")
        perms = None
    if unshared != {"pid", "ipc", "uts"}:
        raise NotServable(f"namespaces {sorted(unshared)} differ from pid, ipc, uts")
    if size is not None or perms is not None:
        raise NotServable("dangling --size or --perms")
    if len(fds.fds) > MAX_FDS:
        raise NotServable("more than 253 fds")
    return plan


# ---------------------------------------------------------------- one zygote process

class Zygote:
    """One zygote process and the Lamina end of its control socket."""

    def __init__(self, key: ZygoteKey, runtime_source: str, warm: Iterable[str]) -> None:
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.pid = 0
        self._config = {
            "prefix": key.prefix, "executable": key.executable, "env": dict(key.env),
            "system": list(SYSTEM_DIRS), "etc": list(ZYGOTE_ETC), "warm": list(warm),
            "scripts": {BOOTSTRAP: os.path.join(runtime_source, "bootstrap.py")},
        }
        self._popen: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._log_fd = -1
        self._log_tail = b""
        self._replies: collections.deque[asyncio.Future[int]] = collections.deque()
        self._dead = False

    @property
    def alive(self) -> bool:
        return not self._dead and self._popen is not None and self._popen.poll() is None

    def describe(self) -> str:
        return f"zygote {os.path.basename(self.key.executable)} pid {self.pid} ({self.key.prefix})"

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cfg_fd = memfd_with(json.dumps(self._config).encode(), "lamina-zygote")
        log_r, log_w = make_output_pipe()
        launch = Launch(
            argv=[self.key.host_python(), "-I", "-S", str(CHILD_SCRIPT), "--stage0",
                  str(theirs.fileno()), str(cfg_fd)],
            env={"LD_LIBRARY_PATH": os.path.join(self.key.prefix, "lib")},
            pass_fds=(theirs.fileno(), cfg_fd), parent_death_signal=True)
        try:
            self._popen = spawn(launch, log_w)
        except BaseException:
            ours.close()
            os.close(log_r)
            raise
        finally:
            theirs.close()
            os.close(cfg_fd)
            os.close(log_w)
        self.pid = self._popen.pid
        ours.setblocking(False)
        self._sock = ours
        self._log_fd = log_r
        self.loop.add_reader(log_r, self._on_log)
        try:
            hello = await asyncio.wait_for(self.loop.sock_recv(ours, 65536), timeout)
        except (TimeoutError, OSError) as e:
            await self.close()
            raise ZygoteError(f"{self.describe()} did not start: {e!r} {self._tail()}") from None
        if not hello.startswith(b"Z"):
            await asyncio.sleep(0.05)             # let its last words reach the log reader
            await self.close()
            raise ZygoteError(f"{self.describe()} did not start: {self._tail() or 'no output'}")
        info = json.loads(hello[1:])
        if info.get("prefix") != "/var/lang":
            await self.close()
            raise ZygoteError(f"{self.describe()} has sys.prefix {info.get('prefix')!r}, not /var/lang")
        self.loop.add_reader(ours.fileno(), self._on_reply)
        log.info("%s ready (Python %s)", self.describe(), info.get("python"))

    def _on_log(self) -> None:
        try:
            chunk = os.read(self._log_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.remove_reader(self._log_fd)
            return
        self._log_tail = (self._log_tail + chunk)[-4096:]
        for line in chunk.decode(errors="replace").splitlines():
            if line.strip():
                log.warning("%s: %s", self.describe(), line)

    def _tail(self) -> str:
        return self._log_tail.decode(errors="replace").strip()[-1500:]

    def request_fork(self, fds: list[int]) -> asyncio.Future[int]:
        """Send a fork request now (the fds may be closed once this returns); the future gets
        the pid of the child's init. A request given up on (its future cancelled) still gets
        its answer, in order, and the child it names is then killed."""
        sock = self._sock
        if sock is None or not self.alive:
            raise ZygoteError(f"{self.describe()} is not running")
        reply: asyncio.Future[int] = self.loop.create_future()
        try:
            sock.sendmsg([b"F"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except OSError as e:             # EAGAIN included: a zygote that stopped reading
            self._dead = True
            raise ZygoteError(f"{self.describe()} is unreachable: {e}") from None
        self._replies.append(reply)
        return reply

    def _on_reply(self) -> None:
        """Answers come in request order: each settles the oldest waiting request."""
        while self._sock is not None:
            try:
                msg = self._sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if not msg:
                self._dead = True
                self.loop.remove_reader(self._sock.fileno())
                error = ZygoteError(f"{self.describe()} exited: {self._tail() or 'no output'}")
                while self._replies:
                    waiting = self._replies.popleft()
                    if not waiting.done():
                        waiting.set_exception(error)
                return
            reply = self._replies.popleft() if self._replies else None
            if msg.startswith(b"P"):
                pid = int(msg[1:])
                if reply is None or reply.done():
                    self.kill_orphan(pid)
                else:
                    reply.set_result(pid)
            elif reply is not None and not reply.done():
                reply.set_exception(ZygoteError(f"{self.describe()}: {msg[1:].decode(errors='replace')}"))

    def kill_orphan(self, pid: int) -> None:
        """A sandbox nobody waits for any more (its pid is safe: the zygote holds the zombie)."""
        try:
            fd = os.pidfd_open(pid)
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            finally:
                os.close(fd)
        except OSError:
            pass
        self.release(pid)

    def release(self, pid: int) -> None:
        """Let the zygote reap `pid` (best effort: a zygote that is gone reaps nothing)."""
        if self._sock is not None and not self._dead:
            try:
                self._sock.send(b"R%d" % pid)
            except OSError:
                pass

    async def close(self, grace: float = 1.0) -> None:
        """Hang up (the zygote exits, and its sandboxes with it) and reap it."""
        self._dead = True
        self._hang_up()
        popen = self._popen
        if popen is None:
            return
        deadline = time.monotonic() + grace
        while popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if popen.poll() is None:
            popen.kill()
            await asyncio.to_thread(popen.wait)

    def discard(self) -> None:
        """Synchronous close, for a zygote of a loop that is gone: SIGKILL and reap."""
        self._dead = True
        self._hang_up()
        if self._popen is not None and self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait()

    def _hang_up(self) -> None:
        if self._sock is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        while self._replies:
            waiting = self._replies.popleft()
            if not waiting.done() and not waiting.get_loop().is_closed():
                waiting.set_exception(ZygoteError(f"{self.describe()} was closed"))
        if self._log_fd >= 0:
            if not self.loop.is_closed():
                self.loop.remove_reader(self._log_fd)
            os.close(self._log_fd)
            self._log_fd = -1


# ---------------------------------------------------------------- a sandbox's first process

def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on; [] when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return []


STAT_STARTTIME, STAT_EXIT_CODE = 22 - 3, 52 - 3     # indexes into _stat_fields()


class ZygoteChild:
    """Popen-like handle (pid, poll, wait, kill, returncode) on a sandbox's init, which is a
    child of the zygote, not of Lamina: exit is seen through a pidfd and the status is read
    from the zombie the zygote keeps until `release()`."""

    def __init__(self, pid: int, release: Callable[[int], None]) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._release = release
        self._released = False
        stat = _stat_fields(pid)
        self._starttime = stat[STAT_STARTTIME] if len(stat) > STAT_STARTTIME else ""
        self._pidfd: int | None = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and self._pidfd is not None:
            readable, _, _ = select.select([self._pidfd], [], [], 0)
            if readable:
                self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._pidfd is not None:
            select.select([self._pidfd], [], [], timeout)
        status = self.poll()
        if status is None:
            raise subprocess.TimeoutExpired(f"sandbox init {self.pid}", timeout or 0)
        return status

    def kill(self) -> None:
        if self.returncode is None and self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _collect(self) -> None:
        stat = _stat_fields(self.pid)
        if len(stat) > STAT_EXIT_CODE and stat[STAT_STARTTIME] == self._starttime:
            self.returncode = os.waitstatus_to_exitcode(int(stat[STAT_EXIT_CODE]))
        else:                      # reaped by someone else: the zygote died, and we with it
            self.returncode = -signal.SIGKILL
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.release()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._release(self.pid)


async def _await_ready(fd: int, timeout: float) -> bool:
    """True once the child wrote its ready byte, False at EOF (setup failed) or timeout."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def on_readable() -> None:
        try:
            data = os.read(fd, 1)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not done.done():
            done.set_result(bool(data))

    os.set_blocking(fd, False)
    loop.add_reader(fd, on_readable)
    try:
        return await asyncio.wait_for(done, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


def _channel_error(channel: socket.socket) -> bytes:
    """What a child reported on its channel before it had the output pipe (b"E<text>")."""
    try:
        msg = channel.recv(4096)
    except OSError:
        return b""
    return msg[1:] if msg.startswith(b"E") else b""


async def _discard_cgroup(cgroup: Cgroup | None, label: str) -> None:
    if cgroup is None:
        return
    try:
        await cgroup.kill_all()
        await cgroup.remove()
    except (CgroupError, OSError) as e:
        log.warning("sandbox %s: %s", label, e)


def _read_available(fd: int) -> bytes:
    out = b""
    while len(out) < 65536:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out


# ---------------------------------------------------------------- the Sandbox

@dataclass
class Spare:
    """A child forked ahead of time: init is in `cgroup` (no limits yet), the runtime waits on
    `channel` for its spec."""

    child: ZygoteChild
    channel: socket.socket
    cgroup: Cgroup | None
    zygote: Zygote

    def usable(self) -> bool:
        return self.zygote.alive and self.child.poll() is None

    async def discard(self, label: str = SPARE_LABEL) -> None:
        self.channel.close()                 # the runtime sees EOF and exits, init after it
        self.child.kill()
        for _ in range(200):
            if self.child.poll() is not None:
                break
            await asyncio.sleep(0.005)
        self.child.release()
        await _discard_cgroup(self.cgroup, label)


class ZygoteSandbox:
    """`Sandbox` that forks Python bootstrap specs from zygotes and hands the rest to `fallback`.

    Zygotes start on first use of their key (interpreter prefix + start-up environment), or
    ahead of time through `prewarm()`, and are started again when they die. With `spares`, each
    zygote keeps one child forked ahead, already in a cgroup of its own (named "zygote-spare",
    without limits until a start sets the spec's): a start then skips the fork and the cgroup
    join (whose RCU grace period is most of a start on cgroup v1). `close()` stops the zygotes
    (their sandboxes die with them) and removes the spares."""

    def __init__(self, fallback: BwrapSandbox, cgroups: CgroupHierarchy | None, *,
                 report: IsolationReport | None = None, warm: Iterable[str] = WARM_MODULES,
                 max_zygotes: int = 8, spares: bool = True) -> None:
        if fallback.config.mode != "setpriv":
            raise ValueError("ZygoteSandbox needs bwrap in setpriv mode (Lamina running as root)")
        self.fallback = fallback
        self.report = report or zygote_report(fallback.report, "python")
        self._cgroups = cgroups
        self._user = fallback.config.user
        self._trees = MountTrees()
        self._warm = tuple(warm)
        self._max = max_zygotes
        self._zygotes: dict[ZygoteKey, Zygote] = {}
        self._starting: dict[ZygoteKey, asyncio.Task[Zygote | None]] = {}
        self._broken: dict[ZygoteKey, float] = {}
        self._setup_failures: dict[ZygoteKey, int] = {}
        self._use_spares = spares and cgroups is not None
        self._spares: dict[ZygoteKey, Spare] = {}
        self._refills: dict[ZygoteKey, asyncio.Task[None]] = {}
        self._cgroupns = self._cgroupns_mode()

    def _cgroupns_mode(self) -> str | None:
        """Whether bwrap would unshare the cgroup namespace ("try", "require" or None)."""
        memfds: list[int] = []
        try:
            options = bwrap_options(SandboxSpec(argv=("true",), env={}), self.fallback.config, memfds)
        finally:
            for fd in memfds:
                os.close(fd)
        if "--unshare-cgroup" in options:
            return "require"
        return "try" if "--unshare-cgroup-try" in options else None

    def why_not(self, spec: SandboxSpec) -> str | None:
        """None when the zygote of `spec` may fork it (once that zygote runs), else why bwrap
        runs it."""
        reason = why_not(spec)
        if reason is not None:
            return reason
        key = ZygoteKey.of(spec)
        if self._broken.get(key, 0.0) > time.monotonic():
            return "its zygote failed recently"
        if key not in self._zygotes and key not in self._starting and \
                len(self._zygotes) + len(self._starting) >= self._max:
            return f"already {self._max} zygotes"
        return None

    def zygote_pids(self) -> dict[str, int]:
        return {f"{k.prefix} {k.executable}": z.pid for k, z in self._zygotes.items() if z.alive}

    def spare_pids(self) -> list[int]:
        return [spare.child.pid for spare in self._spares.values()]

    async def start(self, spec: SandboxSpec) -> SandboxProcess:
        """Fork `spec` from its zygote when it can be served and the zygote runs; else (and
        while a zygote starts in the background, on first use or after it died) bwrap runs it."""
        if self.why_not(spec) is not None:
            return await self.fallback.start(spec)
        key = ZygoteKey.of(spec)
        zygote = self._live(key)
        if zygote is None:
            self._launching(key, spec)
            return await self.fallback.start(spec)
        check_spec(spec)
        try:
            proc = await self._fork(zygote, spec)
        except NotServable as e:
            log.info("sandbox %s: %s; starting it through bwrap", spec.label, e)
            return await self.fallback.start(spec)
        except ZygoteError as e:
            log.warning("sandbox %s: %s; starting it through bwrap", spec.label, e)
            return await self.fallback.start(spec)
        if isinstance(proc, bytes):
            failures = self._setup_failures.get(key, 0) + 1
            self._setup_failures[key] = failures
            log.warning("sandbox %s: zygote child setup failed (%d in a row): %s; starting it through bwrap",
                        spec.label, failures, proc.decode(errors="replace").strip()[-2000:] or "no output")
            if failures >= MAX_SETUP_FAILURES:
                log.error("%s: children keep failing; its specs go to bwrap", zygote.describe())
                self._broken[key] = float("inf")
            return await self.fallback.start(spec)
        self._setup_failures.pop(key, None)
        log.debug("sandbox %s: forked by %s as pid %d", spec.label, zygote.describe(), proc.pid)
        return proc

    async def prewarm(self, specs: Iterable[SandboxSpec]) -> list[str]:
        """Start (and wait for) the zygotes these specs would use; returns a line per spec that
        cannot have one (why not)."""
        problems = []
        for spec in specs:
            reason = self.why_not(spec)
            if reason is None:
                key = ZygoteKey.of(spec)
                if self._live(key) is None and await self._launching(key, spec) is None:
                    reason = "its zygote did not start"
                elif self._use_spares:
                    await self._schedule_refill(key, delay=0.0)
            if reason is not None:
                problems.append(f"{' '.join(spec.argv[:1])}: {reason}")
        return problems

    async def close(self) -> None:
        """Stop every zygote (their sandboxes die with them)."""
        starting, self._starting = list(self._starting.values()), {}
        refills, self._refills = list(self._refills.values()), {}
        for task in starting + refills:
            task.cancel()
        await asyncio.gather(*starting, *refills, return_exceptions=True)
        spares, self._spares = list(self._spares.values()), {}
        for spare in spares:
            await spare.discard()
        zygotes, self._zygotes = list(self._zygotes.values()), {}
        for zygote in zygotes:
            await zygote.close()

    def _live(self, key: ZygoteKey) -> Zygote | None:
        """The running zygote of `key` (forgetting one that died or belongs to another loop)."""
        zygote = self._zygotes.get(key)
        if zygote is None:
            return None
        if zygote.loop is not asyncio.get_running_loop():
            zygote.discard()
        elif not zygote.alive:
            log.warning("%s died; starting a new one", zygote.describe())
            zygote.discard()
        else:
            return zygote
        del self._zygotes[key]
        return None

    def _launching(self, key: ZygoteKey, spec: SandboxSpec) -> asyncio.Task[Zygote | None]:
        loop = asyncio.get_running_loop()
        task = self._starting.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._launch(key, _bind(spec, "/var/runtime")[0]))
            self._starting[key] = task
        return task

    async def _launch(self, key: ZygoteKey, runtime_source: str) -> Zygote | None:
        zygote = Zygote(key, runtime_source, self._warm)
        try:
            untrusted = key.untrusted_paths()
            if untrusted:
                raise ZygoteError(f"no zygote for {key.prefix}: not root-owned or writable by others: "
                                  f"{', '.join(untrusted)}")
            await zygote.start()
        except ZygoteError as e:
            log.warning("%s; its specs go to bwrap for %.0fs", e, RETRY_AFTER)
            self._broken[key] = time.monotonic() + RETRY_AFTER
            return None
        except BaseException:
            zygote.discard()
            raise
        finally:
            if self._starting.get(key) is asyncio.current_task():
                del self._starting[key]
        self._zygotes[key] = zygote
        if self._use_spares:
            self._schedule_refill(key, delay=0.0)
        return zygote

    async def _fork(self, zygote: Zygote, spec: SandboxSpec) -> TreeProcess | bytes:
        """The sandbox, or the output of a child whose setup failed: from the spare, or forked
        now (the spec then travels while the zygote forks and the child joins its cgroup)."""
        key = zygote.key
        spare = self._spares.pop(key, None)
        if self._use_spares:
            self._schedule_refill(key)
        if spare is not None:
            try:
                if not spare.usable():
                    raise ZygoteError("it exited")
                if spare.cgroup is not None:
                    spare.cgroup.set_limits(spec.memory_mb * 1024 * 1024, spec.cpu_millicores, spec.pids_max)
            except (OSError, ZygoteError) as e:
                log.info("sandbox %s: spare unusable (%s); forking a new child", spec.label, e)
                await spare.discard(spec.label)
            else:
                return await self._send_spec(zygote, spare.child, spare.channel, spare.cgroup, spec)
        cgroup = await prepare_cgroup(self._cgroups, spec)
        try:
            channel, reply = self._request_child(zygote, cgroup)
        except BaseException:
            await _discard_cgroup(cgroup, spec.label)
            raise
        return await self._send_spec(zygote, reply, channel, cgroup, spec)

    def _request_child(self, zygote: Zygote, cgroup: Cgroup | None) -> tuple[socket.socket, asyncio.Future[int]]:
        """Phase 1: have the zygote fork a child whose init joins `cgroup`; returns the channel to
        its runtime and the future of init's pid."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = FdList()
        try:
            fds.add(-1, owned=False)                      # [0]: the request, once it is known
            fds.add(theirs.fileno(), owned=False)         # [1]: the channel
            request = {"join": [fds.add(fd) for fd in (cgroup.open_join_fds() if cgroup else [])],
                       "cgroupns": self._cgroupns, "uid": self._user.uid, "gid": self._user.gid}
            fds.fds[0] = memfd_with(json.dumps(request).encode(), "lamina-zygote-request")
            fds.own(fds.fds[0])
            reply = zygote.request_fork(fds.fds)
        except BaseException:
            ours.close()
            raise
        finally:
            fds.close()
            theirs.close()
        ours.setblocking(False)
        return ours, reply

    async def _send_spec(self, zygote: Zygote, child: ZygoteChild | asyncio.Future[int], channel: socket.socket,
                         cgroup: Cgroup | None, spec: SandboxSpec) -> TreeProcess | bytes:
        """Phase 2: the spec, the output and ready pipes and the mount trees to the runtime;
        then wait until it is about to run the bootstrap. Whatever fails, the child dies."""
        fds = FdList()
        read_fd = ready_r = -1
        try:
            fds.add(-1, owned=False)                      # [0]: the spec, once it is known
            read_fd, write_fd = make_output_pipe()
            fds.add(write_fd)                             # [1]
            ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
            fds.add(ready_w)                              # [2]
            plan = self._plan(spec, cgroup, fds)
            fds.fds[0] = memfd_with(json.dumps(plan).encode(), "lamina-sandbox-spec")
            fds.own(fds.fds[0])
            try:
                channel.sendmsg([b"S"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds.fds))])
            except OSError as e:
                raise ZygoteError(f"the child took no spec: {e}") from None
            finally:
                fds.close()
            if not isinstance(child, ZygoteChild):
                try:
                    pid = await asyncio.wait_for(child, REPLY_TIMEOUT)
                except TimeoutError:
                    raise ZygoteError(f"{zygote.describe()} did not answer in time") from None
                try:
                    child = ZygoteChild(pid, zygote.release)
                except OSError as e:
                    zygote.kill_orphan(pid)
                    raise ZygoteError(f"sandbox init {pid} vanished: {e}") from None
        except BaseException:
            fds.close()
            channel.close()
            for fd in (read_fd, ready_r):
                if fd >= 0:
                    os.close(fd)
            if isinstance(child, ZygoteChild):
                child.kill()
                child.release()
            else:
                child.cancel()                            # its answer, if any, kills the child
            await _discard_cgroup(cgroup, spec.label)     # the child may have joined it
            raise
        tree = TreeProcess(cast("subprocess.Popen[bytes]", child), read_fd, cgroup, label=spec.label,
                           exit_status=bwrap_exit_status, supervisor=True, cleanup=child.release)
        try:
            ok = await _await_ready(ready_r, READY_TIMEOUT)
        except BaseException:
            channel.close()
            await tree.kill()
            raise
        finally:
            os.close(ready_r)
        if ok:
            channel.close()
            return tree
        output = _read_available(read_fd) + _channel_error(channel)
        channel.close()
        await tree.kill()
        return output or b"setup failed without output"

    def _schedule_refill(self, key: ZygoteKey, delay: float = SPARE_DELAY) -> asyncio.Task[None]:
        task = self._refills.get(key)
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(self._refill(key, delay))
            self._refills[key] = task
        return task

    async def _refill(self, key: ZygoteKey, delay: float) -> None:
        """Fork the spare of `key` (a little later, not to compete with the start that used it)."""
        try:
            if delay:
                await asyncio.sleep(delay)
            await self._make_spare(key)
        except (CgroupError, OSError, ZygoteError) as e:
            log.warning("no spare child for %s: %s", key.executable, e)

    async def _make_spare(self, key: ZygoteKey) -> None:
        zygote = self._live(key)
        if zygote is None or key in self._spares or self._cgroups is None:
            return
        cgroup = self._cgroups.create(SPARE_LABEL)
        try:
            channel, reply = self._request_child(zygote, cgroup)
        except BaseException:
            await _discard_cgroup(cgroup, SPARE_LABEL)
            raise
        try:
            pid = await asyncio.wait_for(reply, REPLY_TIMEOUT)
            try:
                child = ZygoteChild(pid, zygote.release)
            except OSError:
                zygote.kill_orphan(pid)
                raise
        except BaseException as e:
            reply.cancel()
            channel.close()
            await _discard_cgroup(cgroup, SPARE_LABEL)
            if isinstance(e, TimeoutError):
                raise ZygoteError(f"{zygote.describe()} did not answer in time") from None
            raise
        spare = Spare(child, channel, cgroup, zygote)
        if key in self._spares or not zygote.alive:
            await spare.discard()
        else:
            self._spares[key] = spare

    def _plan(self, spec: SandboxSpec, cgroup: Cgroup | None, fds: FdList) -> dict[str, Any]:
        memfds: list[int] = []
        try:
            options = bwrap_options(spec, self.fallback.config, memfds)
        finally:
            for fd in memfds:
                fds.own(fd)
        plan = zygote_plan(options, fds, self._trees)
        plan["argv"] = list(spec.argv)
        plan["join"] = [fds.add(fd) for fd in (cgroup.open_join_fds() if cgroup else [])]
        plan["rlimits"] = fallback_rlimits(cgroup, spec, dedicated_uid=True)
        plan["uid"], plan["gid"] = self._user.uid, self._user.gid
        return plan
