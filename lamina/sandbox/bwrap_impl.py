"""BwrapSandbox: runs a spec inside bubblewrap (mount, pid, ipc, uts namespaces; the network
namespace is shared so code can reach the host's 127.0.0.1).

Two ways of getting to an unprivileged uid, chosen by the probe:
  * "setpriv" (caller is root): bwrap sets the sandbox up with root's file access (so binds
    may come from anywhere, e.g. /root/.pyenv), keeps only CAP_SETUID/SETGID/SETPCAP, and the
    first program inside is util-linux `setpriv`, which switches to the sandbox uid/gid, clears
    every capability (bounding set too), sets no_new_privs and execs the argv.
  * "userns": bwrap creates an unprivileged user namespace mapping the sandbox uid to the
    caller's uid (a root caller first drops to the sandbox uid, so binds must then be readable
    by it).

Filesystem view: a fresh tmpfs root holding only /usr, /bin, /sbin, /lib* (read-only; symlinks
recreated as symlinks), a minimal /etc (a few read-only files plus synthesised passwd/group),
/proc, /dev, a private size-limited tmpfs /tmp, and the spec's binds; the root itself is
remounted read-only. /tmp is RAM: what the code writes there is charged to its memory cgroup
and so counts against memory_mb (unlike AWS). bwrap options travel through a memfd
(`--args`), so env values never show up in the host's process list.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

from lamina.sandbox.base import FreshStarts, IsolationReport, SandboxSpec
from lamina.sandbox.cgroups import CgroupHierarchy
from lamina.sandbox.identity import SandboxUser
from lamina.sandbox.launch import (
    Launch,
    check_spec,
    memfd_with,
    prepare_cgroup,
    spawn_limited,
)
from lamina.sandbox.process import TreeProcess

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
    "/etc/localtime", "/etc/services", "/etc/protocols", "/etc/ld.so.cache", "/etc/ld.so.conf",
    "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/ssl/certs", "/etc/ssl/openssl.cnf",
    "/etc/ssl/cert.pem", "/etc/ca-certificates", "/etc/ca-certificates.conf",
    "/etc/pki/tls/certs", "/etc/pki/ca-trust/extracted", "/etc/crypto-policies",
)
MODES = ("setpriv", "userns")


@dataclass(frozen=True)
class BwrapConfig:
    bwrap: str = "/usr/bin/bwrap"
    mode: str = "setpriv"                    # see the module docstring
    setpriv: str = "/usr/bin/setpriv"        # must lie under a SYSTEM_DIRS entry (it runs inside)
    user: SandboxUser = field(default_factory=SandboxUser)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"bwrap mode must be one of {MODES}, not {self.mode!r}")


def bwrap_exit_status(status: int) -> int:
    """bwrap reports a child killed by signal n as exit 128+n; map that back to -n."""
    if 128 < status < 128 + signal.NSIG:
        return -(status - 128)
    return status


class _Mounts:
    """Accumulates bwrap mount options, creating parent directories with mode 0755 (bwrap 0.8
    would otherwise create them 0700, unreadable for the sandbox uid)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._dirs: set[str] = {"/"}         # directories bwrap creates (we may add inside)
        self._mounts: set[str] = set()       # binds, symlinks, proc, dev (we never add inside)

    def _exists(self, path: str) -> bool:
        if path in self._dirs or path in self._mounts:
            return True
        return any(path.startswith(m.rstrip("/") + "/") for m in self._mounts)

    def _parents(self, dest: str) -> None:
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/" + "/".join(parts[:i]))

    def dir(self, path: str) -> None:
        if not self._exists(path):
            self._parents(path)
            self.args += ["--perms", "0755", "--dir", path]
            self._dirs.add(path)

    def mount(self, option: list[str], dest: str, *, is_dir: bool = False) -> None:
        self._parents(dest)
        self.args += option
        (self._dirs if is_dir else self._mounts).add(dest)


def _system_mounts(mounts: _Mounts) -> None:
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.mount(["--symlink", os.readlink(path), path], path)
        elif os.path.isdir(path):
            mounts.mount(["--ro-bind", path, path], path)


def _etc_mounts(mounts: _Mounts, user: SandboxUser, fds: list[int]) -> None:
    mounts.dir("/etc")
    for path in ETC_FILES:
        if os.path.exists(path):               # follows symlinks: dangling ones are skipped
            mounts.mount(["--ro-bind", path, path], path)
    for dest, text in (("/etc/passwd", user.passwd()), ("/etc/group", user.group())):
        fds.append(memfd_with(text.encode(), dest))
        mounts.mount(["--perms", "0644", "--ro-bind-data", str(fds[-1]), dest], dest)


def _spec_mounts(mounts: _Mounts, spec: SandboxSpec) -> None:
    mounts.mount(["--proc", "/proc"], "/proc")
    mounts.mount(["--dev", "/dev"], "/dev")
    mounts.mount(["--perms", "1777", "--size", str(spec.tmp_size_mb * 1024 * 1024),
                  "--tmpfs", "/tmp"], "/tmp", is_dir=True)
    for bind in sorted(spec.binds, key=lambda b: b.dest.rstrip("/").count("/")):
        option = "--ro-bind" if bind.read_only else "--bind"
        mounts.mount([option, bind.source, bind.dest], bind.dest)
    mounts.dir(spec.workdir)


def bwrap_options(spec: SandboxSpec, config: BwrapConfig, fds: list[int]) -> list[str]:
    """All bwrap options for `spec` (memfds they refer to are appended to `fds`)."""
    user = config.user
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", spec.hostname, "--die-with-parent", "--new-session"]
    if config.mode == "userns":
        args += ["--unshare-user", "--uid", str(user.uid), "--gid", str(user.gid)]
    else:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP"]
    mounts = _Mounts()
    _system_mounts(mounts)
    _etc_mounts(mounts, user, fds)
    _spec_mounts(mounts, spec)
    args += mounts.args + ["--remount-ro", "/", "--chdir", spec.workdir, "--clearenv"]
    for key, value in spec.env.items():
        args += ["--setenv", key, value]
    return args


def bwrap_command(spec: SandboxSpec, config: BwrapConfig, fds: list[int]) -> list[str]:
    """argv for Popen: bwrap reads its options from a memfd, then runs the program."""
    options = bwrap_options(spec, config, fds)
    fds.append(memfd_with(b"".join(a.encode() + b"\0" for a in options), "bwrap-args"))
    program = list(spec.argv)
    if config.mode == "setpriv":
        user = config.user
        program = [config.setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
                   "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *program]
    return [config.bwrap, "--args", str(fds[-1]), "--", *program]


def bwrap_launch(spec: SandboxSpec, config: BwrapConfig, fds: list[int]) -> Launch:
    drop = config.user if config.mode == "userns" and os.geteuid() == 0 else None
    return Launch(argv=bwrap_command(spec, config, fds), env={}, pass_fds=tuple(fds), drop_to=drop)


class BwrapSandbox(FreshStarts):
    """`Sandbox` backed by bubblewrap; `cgroups` None means rlimits only (see the report)."""

    def __init__(self, report: IsolationReport, config: BwrapConfig | None = None,
                 cgroups: CgroupHierarchy | None = None) -> None:
        self.report = report
        self.config = config or BwrapConfig()
        self._cgroups = cgroups

    async def start(self, spec: SandboxSpec) -> TreeProcess:
        check_spec(spec)
        fds: list[int] = []
        try:
            launch = bwrap_launch(spec, self.config, fds)
            cgroup = await prepare_cgroup(self._cgroups, spec)
            popen, read_fd = await spawn_limited(launch, cgroup, spec, dedicated_uid=self.config.mode == "setpriv")
        finally:
            for fd in fds:
                os.close(fd)
        return TreeProcess(popen, read_fd, cgroup, label=spec.label, exit_status=bwrap_exit_status,
                           supervisor=True)
