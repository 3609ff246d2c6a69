"""The Python zygote: a pre-initialised interpreter that forks one sandboxed runtime per request.

This file runs under the *function's* interpreter (CPython 3.8 - 3.13), never under Lamina's:
standard library only, nothing newer than 3.8. Lamina's side, the protocol and the security
argument are in lamina/sandbox/zygote_impl.py. One file plays three roles:

stage 0   ``<host prefix>/bin/python3.X -I -S zygote_child.py --stage0 CTL CFG``, started by
          Lamina (root, parent-death signal set). Builds the zygote's own root in a private mount
          namespace - a read-only tmpfs holding /usr and /lib* (as the sandbox has them), the
          /etc files the dynamic loader needs, the prefix at /var/lang and THIS file at
          /var/runtime/bootstrap.py - pivots into it, and execs stage 1. The zygote never sees
          any other host file: it cannot import or dlopen anything but system files.
stage 1   ``/var/lang/bin/python3.X /var/runtime/bootstrap.py``: the very command line a bwrap
          sandbox runs, in an environment holding only the variables that shape interpreter
          start-up (locale, HOME, LD_LIBRARY_PATH), so sys.prefix, sys.path, sys.executable,
          sys.argv, sys.flags and the stdio objects come out as in a sandbox. It imports what
          the bootstrap needs (never user code), compiles the bootstrap, and serves requests on
          fd 3, one end of a SOCK_SEQPACKET socketpair that only Lamina holds.
sandbox   per fork request the zygote forks, in a fresh pid namespace, a child that is pid 1
          there ("init": reaps, relays the exit status like bwrap's pid 1). Init unshares the
          mount/ipc/uts namespaces and forks the runtime (pid 2); then init moves itself and
          the runtime into the sandbox's cgroup, unshares the cgroup namespace and drops its
          privileges, while the runtime receives its spec on a private channel and builds the
          root the spec describes (the mounts bwrap would make; sources arrive as detached
          mount trees). The runtime pivots into it, keeps only stdin (/dev/null) and
          stdout/stderr (the output pipe), waits until init has joined the cgroup, drops to
          the sandbox uid/gid with no capabilities (bounding set too) and no_new_privs, sets
          the spec's environment and continues - without exec - into the bootstrap's code as
          ``__main__``.

The zygote never reads a spec: the child reads it (with the secrets in its environment) after
the fork, so no sandbox can find another's data in the memory it inherits from the zygote.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import select
import socket
import sys
from typing import Any

CTL_FD, CONFIG_FD, PIDNS_FD = 3, 4, 5      # the zygote's fds, fixed by stage 0
SCRIPT = "/var/runtime/bootstrap.py"      # where this file sits inside the zygote's root
NEWROOT = "/newroot"                      # mount point of a sandbox's root, in the zygote's root
MAX_FDS = 253                             # SCM_MAX_FD

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID = 0x08000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_SILENT, MS_RELATIME = 32768, 1 << 21
MNT_DETACH = 2
SYS_MOVE_MOUNT, MOVE_MOUNT_F_EMPTY_PATH = 429, 0x4      # same number on every architecture
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_READ, PR_CAPBSET_DROP = 1, 4, 23, 24
PR_GET_NO_NEW_PRIVS = 39
PR_SET_MM, PR_SET_MM_ARG_START, PR_SET_MM_ARG_END = 35, 8, 9
PR_SET_MM_ENV_START, PR_SET_MM_ENV_END = 10, 11
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SIGKILL = 9
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
# statvfs f_flag bit -> mount(2) flag, for remounts that keep a mount's other flags (as bwrap)
STATVFS_FLAGS = ((1, MS_RDONLY), (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (16, 16),
                 (1024, 1024), (2048, 2048), (4096, MS_RELATIME))
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
PROC_COVERED = ("sys", "sysrq-trigger", "irq", "bus")    # made read-only in a sandbox's /proc

_keep_alive = []  # type: list[object]   # buffers the kernel points at (PR_SET_MM)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class Libc:
    """The few system calls the standard library lacks (3.8 has no os.unshare/setns/mount)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._libc = libc
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                               ctypes.c_char_p]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.unshare.argtypes = [ctypes.c_int]
        libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        libc.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        libc.capget.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        libc.syscall.restype = ctypes.c_long
        self._pivot = PIVOT_ROOT.get(os.uname().machine)

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, "%s: %s" % (what, os.strerror(errno)))
        return result

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        self._check(self._libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
                    "mount %s on %s" % (source or fstype, target))

    def move_mount(self, tree_fd: int, target: str) -> None:
        """Attach a detached mount tree (from open_tree(OPEN_TREE_CLONE)) at `target`."""
        self._check(self._libc.syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree_fd), ctypes.c_char_p(b""),
                                       ctypes.c_int(-100), ctypes.c_char_p(_b(target)),
                                       ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount to " + target)

    def umount2(self, target: str, flags: int) -> None:
        self._check(self._libc.umount2(_b(target), flags), "umount " + target)

    def unshare(self, flags: int) -> None:
        self._check(self._libc.unshare(flags), "unshare(%#x)" % flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._check(self._libc.setns(fd, nstype), "setns")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._libc.sethostname(raw, len(raw)), "sethostname")

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        return self._check(self._libc.prctl(option, arg2, arg3, 0, 0), "prctl(%d)" % option)

    def try_prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> bool:
        return bool(self._libc.prctl(option, arg2, arg3, 0, 0) >= 0)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        if self._pivot is None:
            raise OSError(38, "pivot_root: unknown syscall number on " + os.uname().machine)
        self._check(self._libc.syscall(ctypes.c_long(self._pivot), ctypes.c_char_p(_b(new_root)),
                                       ctypes.c_char_p(_b(put_old))), "pivot_root")

    def clear_capabilities(self) -> None:
        """Empty the effective, permitted and inheritable sets (setuid leaves inheritable)."""
        header = _CapHeader(0x20080522, 0)        # _LINUX_CAPABILITY_VERSION_3
        data = (_CapData * 2)()
        self._check(self._libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")

    def capabilities(self) -> list[int]:
        """[effective, permitted, inheritable] of this thread, 64-bit each."""
        header = _CapHeader(0x20080522, 0)
        data = (_CapData * 2)()
        self._check(self._libc.capget(ctypes.byref(header), ctypes.byref(data)), "capget")
        return [data[0].effective | data[1].effective << 32, data[0].permitted | data[1].permitted << 32,
                data[0].inheritable | data[1].inheritable << 32]


def _b(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def _read_fd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _memfd_with(data: bytes, name: str) -> int:
    fd = os.memfd_create(name, 0)      # inheritable on purpose: it crosses the exec to stage 1
    os.write(fd, data)
    return fd


# ============================================================================= stage 0

def _ensure_dir(path: str, mode: int = 0o755) -> None:
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        _ensure_dir(parent)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def _ensure_file(path: str) -> None:
    _ensure_dir(os.path.dirname(path))
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))


def _mount_flags(path: str) -> int:
    flags, current = 0, os.statvfs(path).f_flag
    for bit, flag in STATVFS_FLAGS:
        if current & bit:
            flags |= flag
    return flags


def _remount(libc: Libc, path: str, add: int) -> None:
    current = _mount_flags(path)
    libc.mount("none", path, None, MS_SILENT | MS_BIND | MS_REMOUNT | current | add)


def _bind_fd(libc: Libc, fd: int, dest: str, read_only: bool, devices: bool = False,
             submounts: bool = False) -> None:
    """Bind the file or directory `fd` (O_PATH) refers to at `dest`, as bwrap's --(ro-)bind."""
    if os.path.isdir("/proc/self/fd/%d" % fd):
        _ensure_dir(dest)
    else:
        _ensure_file(dest)
    libc.mount("/proc/self/fd/%d" % fd, dest, None, MS_SILENT | MS_BIND | MS_REC)
    add = MS_NOSUID | (0 if devices else MS_NODEV) | (MS_RDONLY if read_only else 0)
    _remount(libc, dest, add)
    if submounts:                       # a recursive bind copied mounts below it: same treatment
        for path in _mounts_below(dest):
            try:
                _remount(libc, path, add)
            except OSError:
                pass


def _mounts_below(dest: str) -> list[str]:
    found = []
    prefix = dest.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split(" ", 5)[4].replace("\\040", " ")
            if point.startswith(prefix):
                found.append(point)
    return found


def stage0(ctl_fd: int, cfg_fd: int) -> None:
    """Build the zygote's root and exec stage 1 in it (runs on the host, as root)."""
    cfg = json.loads(_read_fd(cfg_fd).decode())
    os.close(cfg_fd)
    libc = Libc()
    with open(os.path.abspath(__file__), "rb") as f:
        me = f.read()
    scripts = {}
    for inside, host_path in cfg["scripts"].items():
        try:
            with open(host_path, "rb") as f:
                scripts[inside] = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            pass
    stage1_cfg = {"env": cfg["env"], "scripts": scripts, "warm": cfg["warm"]}
    os.dup2(ctl_fd, CTL_FD)
    cfg_mem = _memfd_with(json.dumps(stage1_cfg).encode(), "lamina-zygote-config")
    os.dup2(cfg_mem, CONFIG_FD)
    pidns = os.open("/proc/self/ns/pid", os.O_RDONLY)
    os.dup2(pidns, PIDNS_FD)
    for fd in {ctl_fd, cfg_mem, pidns} - {CTL_FD, CONFIG_FD, PIDNS_FD}:
        os.close(fd)
    for fd in (CTL_FD, CONFIG_FD, PIDNS_FD):
        os.set_inheritable(fd, True)        # dup2 onto itself is a no-op that keeps O_CLOEXEC

    libc.unshare(CLONE_NEWNS)
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Every source is opened (in this namespace) before /tmp is covered: one may live there.
    sources = {}
    for path in cfg["system"] + cfg["etc"] + [cfg["prefix"]]:
        if os.path.islink(path) and path in cfg["system"]:
            continue
        if os.path.exists(path):
            sources[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
    root = "/tmp"
    libc.mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for path in cfg["system"]:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif path in sources:
            _bind_fd(libc, sources[path], root + path, read_only=True, submounts=True)
    for path in cfg["etc"]:
        if path in sources:
            _bind_fd(libc, sources[path], root + path, read_only=True)
    _bind_fd(libc, sources[cfg["prefix"]], root + "/var/lang", read_only=True, submounts=True)
    _ensure_dir(root + os.path.dirname(SCRIPT))
    with open(root + SCRIPT, "wb") as f:
        f.write(me)
    os.chmod(root + SCRIPT, 0o644)
    _ensure_dir(root + NEWROOT)
    _remount(libc, root, MS_RDONLY | MS_NOSUID | MS_NODEV)
    for fd in sources.values():
        os.close(fd)
    os.chdir(root)
    libc.pivot_root(".", ".")
    libc.umount2(".", MNT_DETACH)
    os.chdir("/")
    exe = cfg["executable"]
    os.execve(exe, [exe, SCRIPT], cfg["env"])


# ============================================================================= stage 1

class Zygote:
    """Stage 1: warm up once, then fork a sandbox per request."""

    def __init__(self) -> None:
        cfg = json.loads(_read_fd(CONFIG_FD).decode())
        os.close(CONFIG_FD)
        given = cfg["env"]
        # Variables the interpreter itself set during start-up (e.g. LC_CTYPE=C.UTF-8 from
        # locale coercion): a sandbox's runtime gets them too, as a fresh interpreter would.
        self.added_env = dict((k, v) for k, v in os.environ.items() if k not in given)
        self.libc = Libc()
        for name in cfg["warm"]:
            try:
                __import__(name)
            except Exception:
                pass
        try:
            "localhost".encode("idna")         # getaddrinfo() encodes host names with it
        except Exception:
            pass
        self.scripts = {}    # type: dict[str, tuple[bytes, object]]
        for path, text in cfg["scripts"].items():
            source = text.encode("utf-8")
            self.scripts[path] = (source, compile(source, path, "exec", dont_inherit=True))
        self.ctl = socket.socket(fileno=CTL_FD)
        gc.collect()
        gc.freeze()          # forked children do not copy the zygote's objects by scanning them
        sys.stdout.flush()
        sys.stderr.flush()

    def serve(self) -> list[int]:
        """Answer requests until Lamina hangs up; returns only in a freshly forked sandbox."""
        hello = {"pid": os.getpid(), "python": sys.version.split()[0], "prefix": sys.prefix,
                 "scripts": sorted(self.scripts)}
        self.ctl.send(b"Z" + json.dumps(hello).encode())
        pending = set()          # type: set[int]   # released while still running
        while True:
            if pending:
                pending = set(p for p in pending if not _reaped(p))
            ready, _, _ = select.select([self.ctl], [], [], 1.0 if pending else None)
            if not ready:
                continue
            msg, fds = self._receive()
            if not msg:
                os._exit(0)                   # Lamina is gone
            if msg[:1] == b"F":
                pid = self._fork(fds)
                if pid == 0:
                    return fds
                for fd in fds:
                    os.close(fd)
                if pid > 0:
                    self.ctl.send(b"P%d" % pid)
            elif msg[:1] == b"R":
                for fd in fds:
                    os.close(fd)
                try:
                    pid = int(msg[1:])
                except ValueError:
                    continue
                if not _reaped(pid):
                    pending.add(pid)

    def _receive(self) -> tuple[bytes, list[int]]:
        return _recv_with_fds(self.ctl)

    def _fork(self, fds: list[int]) -> int:
        """Fork into a new pid namespace (the child is its pid 1); -1 after a reported error."""
        try:
            self.libc.unshare(CLONE_NEWPID)
        except OSError as e:
            self.ctl.send(b"E" + str(e).encode()[:2000])
            return -1
        try:
            pid = os.fork()
        except OSError as e:
            self.libc.setns(PIDNS_FD, CLONE_NEWPID)
            self.ctl.send(b"E" + str(e).encode()[:2000])
            return -1
        if pid != 0:
            self.libc.setns(PIDNS_FD, CLONE_NEWPID)       # later forks: a namespace of their own
        return pid


def _recv_with_fds(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the fds it carries (b"" at EOF)."""
    try:
        msg, ancdata, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
    except ConnectionError:
        return b"", []
    fds = []   # type: list[int]
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i:i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4))
    return msg, fds


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


# ============================================================================= a sandbox

class SetupError(Exception):
    pass


class Sandbox:
    """The child: becomes the sandbox its request describes (see the module docstring).

    A fork request carries only what init needs: a memfd with {"join": [fd indexes],
    "cgroupns": ...}, a private channel (socketpair end) and the cgroup.procs fds. The rest -
    a memfd with the spec, the output pipe, the ready pipe and the mount trees - arrives on the
    channel, read by the runtime, possibly much later (a spare waits there for its spec)."""

    def __init__(self, zygote: Zygote, fds: list[int]) -> None:
        self.libc = zygote.libc
        self.zygote = zygote
        self.fds = fds
        self.out = 2                              # where a failure is reported: the output
        self.channel = -1                         # pipe once known, else the channel
        self.step = "reading the request"

    def fd(self, index: int) -> int:
        return self.fds[index]

    def run(self) -> tuple[Any, dict[str, Any]]:
        """Init (pid 1) never returns; the runtime (pid 2) returns the code and globals to run.

        Init forks the runtime first thing, then moves itself and the runtime into the cgroup
        (the first cgroup.procs write waits for an RCU grace period, milliseconds on cgroup v1)
        while the runtime receives its spec and builds the root; the runtime waits for that
        before it drops privileges, and nothing of the function runs before it."""
        zygote = self.zygote
        os.close(zygote.ctl.detach())           # Lamina's control socket: gone before anything else
        os.close(PIDNS_FD)
        os.dup2(0, 1)                            # not the zygote's log pipe: /dev/null until the
        os.dup2(0, 2)                            # output pipe arrives
        channel = self.channel = self.fd(1)
        request = json.loads(_read_fd(self.fds[0]).decode())
        join = [self.fd(i) for i in request["join"]]
        self.step = "creating namespaces"
        os.setsid()
        self.libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)
        joined_r, joined_w = os.pipe()
        self.step = "starting the runtime"
        main = os.fork()
        if main != 0:
            os.close(joined_r)
            self.channel = -1
            self.init(request, join, main, joined_w)      # never returns
        os.close(joined_w)
        for fd in [self.fds[0]] + join:
            os.close(fd)
        return self.runtime(channel, joined_r)

    def init(self, request: dict[str, Any], join: list[int], main: int, joined_w: int) -> None:
        """pid 1: join the cgroup with the runtime, drop privileges, then reap. It reports a
        failure to the runtime (through `joined_w`), which passes it on."""
        try:
            self.step = "joining the cgroup"
            for me in (b"0", str(main).encode()):        # pids as this namespace sees them
                for fd in join:
                    os.write(fd, me)
            if request["cgroupns"]:
                try:
                    self.libc.unshare(CLONE_NEWCGROUP)   # after joining: its root is our cgroup
                except OSError:
                    if request["cgroupns"] == "require":
                        raise
            _close_range_but(3, max([256] + [fd + 1 for fd in self.fds]), (joined_w,))
            self.step = "dropping privileges"
            self.drop_privileges(request["uid"], request["gid"])
        except BaseException as e:
            try:
                os.write(joined_w, ("E%s failed (init): %s" % (self.step, e)).encode()[:4000])
            finally:
                os._exit(1)
        os.write(joined_w, b"J")
        os.close(joined_w)
        _init(main)

    def runtime(self, channel: int, joined_r: int) -> tuple[Any, dict[str, Any]]:
        self.step = "receiving the spec"
        chan = socket.socket(fileno=channel)
        msg, fds = _recv_with_fds(chan)
        if not msg:
            os._exit(1)                          # Lamina gave up on this sandbox
        self.fds = fds
        self.out = fds[1]
        self.channel = -1
        chan.close()
        spec = json.loads(_read_fd(fds[0]).decode())
        self.libc.sethostname(spec["hostname"])
        self.step = "building the root"
        self.build_root(spec)
        self.step = "setting up stdio"
        os.dup2(self.out, 1)
        os.dup2(self.out, 2)
        self.out = 2
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        self.step = "waiting for the cgroup"
        joined = os.read(joined_r, 4096)
        if joined != b"J":
            raise SetupError(joined[1:].decode(errors="replace") if joined else "init died")
        if spec["cgroupns"]:
            self.step = "entering the cgroup namespace"
            ns = os.open("/proc/1/ns/cgroup", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.libc.setns(ns, CLONE_NEWCGROUP)
            except OSError:
                if spec["cgroupns"] == "require":
                    raise
            finally:
                os.close(ns)
        ready = os.dup(self.fd(2))
        _close_all_but((0, 1, 2, ready))
        self.step = "setting rlimits"
        _set_rlimits(spec["rlimits"])
        self.step = "changing directory"
        os.chdir(spec["chdir"])
        env = dict(spec["env"])
        env["PWD"] = spec["chdir"]              # as bwrap sets it
        self.step = "setting the process environment block"
        self.set_proc_view(spec["argv"], env)
        self.step = "dropping privileges"
        self.drop_privileges(spec["uid"], spec["gid"])
        if os.getppid() != 1:
            os._exit(1)
        self.libc.prctl(PR_SET_DUMPABLE, 1)      # as after exec: /proc/self is ours again
        self.step = "preparing the interpreter"
        code, main_globals = self.prepare_interpreter(spec, env)
        os.write(ready, b"R")
        os.close(ready)
        return code, main_globals

    # -- filesystem ---------------------------------------------------------------------------

    def build_root(self, spec: dict[str, Any]) -> None:
        libc = self.libc
        libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
        root = NEWROOT
        libc.mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        for op in spec["ops"]:
            kind, dest = op[0], root + op[1]
            self.step = "mounting %s (%s)" % (op[1], kind)
            if kind == "dir":
                _make_dir(dest, op[2])
            elif kind == "tree":
                self.attach(dest, op[2], op[3])
            elif kind == "symlink":
                _ensure_dir(os.path.dirname(dest))
                os.symlink(op[2], dest)
            elif kind == "data":
                _ensure_dir(os.path.dirname(dest))
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, _read_fd(self.fd(op[2])))
                finally:
                    os.close(fd)
                os.chmod(dest, op[3])
                libc.mount(dest, dest, None, MS_SILENT | MS_BIND)     # a read-only mount of its own,
                _remount(libc, dest, MS_RDONLY | MS_NOSUID | MS_NODEV)  # as bwrap's --ro-bind-data
            elif kind == "tmpfs":
                _ensure_dir(dest)
                options = "mode=0%o" % op[2] + (",size=%d" % op[3] if op[3] else "")
                libc.mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV, options)
            elif kind == "proc":
                self.mount_proc(dest)
            elif kind == "dev":
                self.mount_dev(dest, op[2])
            elif kind == "remount-ro":
                _remount(libc, dest, MS_RDONLY | MS_NOSUID | MS_NODEV)
            else:
                raise SetupError("unknown mount operation %r" % (kind,))
        self.step = "pivoting into the new root"
        os.chdir(root)
        libc.pivot_root(".", ".")
        libc.umount2(".", MNT_DETACH)           # the zygote's root
        os.chdir("/")

    def attach(self, dest: str, index: int, is_dir: bool) -> None:
        """A bind: Lamina cloned the source (flags, propagation and submounts already set)."""
        if is_dir:
            _ensure_dir(dest)
        else:
            _ensure_file(dest)
        self.libc.move_mount(self.fd(index), dest)

    def mount_proc(self, dest: str) -> None:
        _ensure_dir(dest)
        self.libc.mount("proc", dest, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for name in PROC_COVERED:           # as bwrap: only what is writable at all, read-only
            path = dest + "/" + name
            if os.access(path, os.W_OK):
                self.libc.mount(path, path, None, MS_SILENT | MS_BIND | MS_REC)
                _remount(self.libc, path, MS_RDONLY | MS_NOSUID | MS_NODEV)

    def mount_dev(self, dest: str, nodes: dict[str, int]) -> None:
        """As bwrap's --dev: a tmpfs with the harmless device nodes, std* links and a devpts."""
        libc = self.libc
        _ensure_dir(dest)
        libc.mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        for name in DEV_NODES:
            if name in nodes:
                self.attach(dest + "/" + name, nodes[name], False)
        for i, name in enumerate(("stdin", "stdout", "stderr")):
            os.symlink("/proc/self/fd/%d" % i, dest + "/" + name)
        os.symlink("/proc/self/fd", dest + "/fd")
        os.symlink("/proc/kcore", dest + "/core")
        os.mkdir(dest + "/shm", 0o755)
        os.mkdir(dest + "/pts", 0o755)
        libc.mount("devpts", dest + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                   "newinstance,ptmxmode=0666,mode=620")
        os.symlink("pts/ptmx", dest + "/ptmx")

    # -- identity -----------------------------------------------------------------------------

    def set_proc_view(self, argv: list[str], env: dict[str, str]) -> None:
        """Point /proc/self/environ (and cmdline, if it differs) at the spec's values, as an exec
        would; best effort (needs CAP_SYS_RESOURCE and CONFIG_CHECKPOINT_RESTORE)."""
        block = b"".join(k.encode() + b"=" + v.encode() + b"\0" for k, v in env.items())
        self._set_region(block, PR_SET_MM_ENV_START, PR_SET_MM_ENV_END)
        if list(argv) != [sys.executable, SCRIPT]:
            self._set_region(b"".join(a.encode() + b"\0" for a in argv), PR_SET_MM_ARG_START, PR_SET_MM_ARG_END)

    def _set_region(self, data: bytes, start_opt: int, end_opt: int) -> None:
        if not data:
            return
        buf = ctypes.create_string_buffer(data, len(data))
        _keep_alive.append(buf)
        start = ctypes.addressof(buf)
        end = start + len(data)
        libc = self.libc
        # The kernel wants start <= end after each call: which goes first depends on where the
        # new region lies relative to the old one.
        if libc.try_prctl(PR_SET_MM, start_opt, start):
            libc.try_prctl(PR_SET_MM, end_opt, end)
        elif libc.try_prctl(PR_SET_MM, end_opt, end):
            libc.try_prctl(PR_SET_MM, start_opt, start)

    def drop_privileges(self, uid: int, gid: int) -> None:
        """What `setpriv --reuid --regid --clear-groups --inh-caps=-all --bounding-set=-all
        --no-new-privs` does, then the parent-death signal (a credential change clears it)."""
        libc = self.libc
        cap = 0
        while libc.try_prctl(PR_CAPBSET_DROP, cap):
            cap += 1
        if cap == 0:
            raise SetupError("cannot drop the capability bounding set")
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        libc.clear_capabilities()
        libc.try_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        if (os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups()
                or any(libc.capabilities()) or libc.prctl(PR_GET_NO_NEW_PRIVS) != 1
                or any(libc.prctl(PR_CAPBSET_READ, c) for c in range(cap))):
            raise SetupError("privileges were not dropped completely")
        # (pid 1 of a namespace sees getppid() == 0, so there is no check for a zygote that
        # died just before this; its cgroup still holds this tree for Lamina to kill.)
        libc.prctl(PR_SET_PDEATHSIG, SIGKILL)

    # -- the interpreter ----------------------------------------------------------------------

    def prepare_interpreter(self, spec: dict[str, Any], env: dict[str, str]) -> tuple[Any, dict[str, Any]]:
        """Make this forked interpreter look like `python3.X script args` started afresh with
        the spec's environment, and return the script's code and its __main__ globals."""
        import builtins
        import importlib
        import importlib.machinery
        import time
        import types

        argv = spec["argv"]
        script = argv[1]
        os.environ.clear()
        os.environ.update(env)
        for key, value in self.zygote.added_env.items():
            os.environ[key] = value
        time.tzset()                      # time.timezone & co. as of the spec's TZ
        logging = sys.modules.get("logging")
        if logging is not None:           # relativeCreated counts from the runtime's start
            start = getattr(logging, "_startTime", None)
            logging._startTime = time.time_ns() if isinstance(start, int) else time.time()  # type: ignore[attr-defined]
        sys.argv = list(argv[1:])
        if hasattr(sys, "orig_argv"):
            sys.orig_argv = list(argv)
        sys.path[0] = os.path.dirname(script)
        pythonpath = env.get("PYTHONPATH")
        if pythonpath is not None:        # what start-up would have done with it
            entries = pythonpath.split(os.pathsep)
            if sys.version_info >= (3, 11):
                entries = [os.path.abspath(p) for p in entries]
            sys.path[1:1] = entries
        # The zygote's finders cached a filesystem without /var/task & co. Dropping them is
        # enough (importlib.invalidate_caches() would import importlib.metadata on 3.12+).
        sys.path_importer_cache.clear()
        try:
            with open(script, "rb") as f:
                source = f.read()
        except OSError as e:
            sys.stderr.write("%s: can't open file %r: [Errno %s] %s\n"
                             % (sys.executable, script, e.errno, e.strerror))
            sys.stderr.flush()
            os._exit(2)
        cached = self.zygote.scripts.get(script)
        if cached is not None and cached[0] == source:
            code = cached[1]
        else:
            code = compile(source, script, "exec", dont_inherit=True)
        main = types.ModuleType("__main__")
        main.__file__ = script
        main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
        main.__spec__ = None
        main.__package__ = None
        main.__builtins__ = builtins  # type: ignore[attr-defined]
        main.__annotations__ = {}
        main.__cached__ = None  # type: ignore[attr-defined]
        sys.modules["__main__"] = main
        return code, main.__dict__


def _make_dir(path: str, mode: int) -> None:
    _ensure_dir(os.path.dirname(path.rstrip("/")) or "/")
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def _set_rlimits(limits: list[list[int]]) -> None:
    for res, value in limits:
        resource.setrlimit(res, (value, value))


def _close_range_but(low: int, high: int, keep: tuple[int, ...]) -> None:
    for fd in range(low, high):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _close_all_but(keep: tuple[int, ...]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _init(main: int) -> None:
    """pid 1 of the sandbox: reap everything, exit with the runtime's status (128+n for a
    signal, as bwrap does) once the runtime is gone - which ends the namespace."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)        # no handler: init ignores what its tree sends
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if pid == main:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))


def _fail(sandbox: Sandbox, error: BaseException) -> None:
    message = ("lamina zygote: %s failed: %s\n" % (sandbox.step, error)).encode()
    for fd, data in ((sandbox.channel, b"E" + message), (sandbox.out, message)):
        if fd >= 0:
            try:
                os.write(fd, data)
            except OSError:
                pass
    os._exit(1)


def _become_sandbox(zygote: Zygote, fds: list[int]) -> tuple[Any, dict[str, Any]]:
    sandbox = Sandbox(zygote, fds)
    try:
        return sandbox.run()
    except BaseException as e:   # nothing of the sandbox setup may unwind into the zygote's code
        _fail(sandbox, e)
        raise


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--stage0":
        try:
            stage0(int(sys.argv[2]), int(sys.argv[3]))
        except BaseException as e:
            sys.stderr.write("lamina zygote: stage 0 failed: %s\n" % (e,))
            sys.stderr.flush()
            os._exit(1)
    _zygote = Zygote()
    _code, _globals = _become_sandbox(_zygote, _zygote.serve())
    del _zygote
    exec(_code, _globals)
