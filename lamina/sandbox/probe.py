"""Find out what isolation this host allows and describe it as an `IsolationReport`.

Probing has side effects: it creates the cgroup parent (e.g. /sys/fs/cgroup/memory/lamina)
and runs `bwrap ... true` once per candidate mode (a few milliseconds each).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from lamina.sandbox.base import IsolationReport, SandboxSpec
from lamina.sandbox.bwrap_impl import SYSTEM_DIRS, BwrapConfig, bwrap_launch
from lamina.sandbox.cgroups import CgroupHierarchy, detect_hierarchy
from lamina.sandbox.identity import SandboxUser
from lamina.sandbox.launch import make_preexec

SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class HostProbe:
    uid: int
    user: SandboxUser
    bwrap_path: str | None
    setpriv_path: str | None
    bwrap_mode: str | None                   # first working mode, "setpriv" | "userns"
    bwrap_errors: tuple[str, ...]            # why the other modes did not work
    cgroups: CgroupHierarchy | None
    cgroup_warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def bwrap_config(self) -> BwrapConfig:
        if self.bwrap_path is None or self.bwrap_mode is None:
            raise RuntimeError("bubblewrap is not usable here: " + "; ".join(self.bwrap_errors))
        return BwrapConfig(bwrap=self.bwrap_path, mode=self.bwrap_mode,
                           setpriv=self.setpriv_path or "/usr/bin/setpriv", user=self.user)

    def report(self, backend: str) -> IsolationReport:
        if backend not in ("bwrap", "plain"):
            raise ValueError(f"unknown backend {backend!r}")
        build = self._bwrap_report if backend == "bwrap" else self._plain_report
        namespaces, uid, warnings = build()
        return IsolationReport(
            backend=backend,
            cgroup_version=self.cgroups.version if self.cgroups else "none",
            namespaces=namespaces,
            limits=self.cgroups.controllers if self.cgroups else (),
            unprivileged_uid=uid,
            warnings=tuple(warnings + list(self.cgroup_warnings) + self._uid_clash()),
        )

    def _bwrap_report(self) -> tuple[tuple[str, ...], int | None, list[str]]:
        self.bwrap_config()
        namespaces = ["mount", "pid", "ipc", "uts"]
        if os.path.exists("/proc/self/ns/cgroup"):
            namespaces.append("cgroup")
        warnings: list[str] = []
        if self.bwrap_mode == "userns":
            namespaces.append("user")
            warnings += self._userns_warnings()
        return tuple(namespaces), (None if not self.is_root else self.user.uid), warnings

    def _userns_warnings(self) -> list[str]:
        if self.is_root:
            return [f"setpriv mode unavailable ({'; '.join(self.bwrap_errors) or 'no setpriv'}): "
                    f"sandboxes are set up as uid {self.user.uid}, so every bind source must be "
                    f"readable by that uid (e.g. nothing under /root)"]
        return [f"not running as root: sandboxed code runs as your own uid {self.uid} on the host "
                f"(shown as {self.user.uid} inside a user namespace); it only sees the sandbox's "
                f"files, but writes to read-write binds as uid {self.uid}"]

    def _plain_report(self) -> tuple[tuple[str, ...], int | None, list[str]]:
        if self.bwrap_path is None:
            warnings = ["bubblewrap (bwrap) not found: install it (e.g. apt install bubblewrap) "
                        "for filesystem, pid, ipc and uts isolation"]
        elif self.bwrap_mode is None:
            warnings = ["bubblewrap does not work here (" + "; ".join(self.bwrap_errors) + ")"]
        else:
            warnings = ["the plain backend was requested although bubblewrap works"]
        runs_as = f"uid {self.user.uid}" if self.is_root else f"your own uid {self.uid}"
        warnings += [
            f"no filesystem isolation: sandboxed code sees the whole host filesystem as {runs_as}; "
            "binds are path-translated, not mounted, and read-only binds are not enforced",
            "no pid, ipc or uts namespaces: sandboxed code can see host processes",
            "/tmp is a private host directory (TMPDIR) without a size limit",
        ]
        if not self.is_root:
            warnings.append(f"sandboxed code runs as Lamina's own uid {self.uid}: it can read and "
                            "change all of that user's files and signal Lamina itself")
        return (), (self.user.uid if self.is_root else None), warnings

    def _uid_clash(self) -> list[str]:
        owner = self.user.host_account()
        if owner is None or not self.is_root:
            return []
        return [f"sandbox uid {self.user.uid} is also host account {owner!r}: files of that "
                f"account inside binds are writable by sandboxed code"]


def find_tool(name: str) -> str | None:
    found = shutil.which(name, path=SYSTEM_PATH)
    return os.path.realpath(found) if found else None


def inside_system_dirs(path: str) -> bool:
    return any(path.startswith(d + "/") for d in SYSTEM_DIRS)


def try_bwrap(config: BwrapConfig) -> str | None:
    """Run `true` in a sandbox of this config; None when it worked, else why not."""
    spec = SandboxSpec(argv=("true",), env={"PATH": SYSTEM_PATH}, tmp_size_mb=1, label="probe")
    fds: list[int] = []
    try:
        launch = bwrap_launch(spec, config, fds)
        done = subprocess.run(launch.argv, env=launch.env, pass_fds=launch.pass_fds,
                              preexec_fn=make_preexec(launch), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{config.mode} mode: {e}"
    finally:
        for fd in fds:
            os.close(fd)
    if done.returncode == 0:
        return None
    detail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
    return f"{config.mode} mode: exit {done.returncode}: {detail[-1] if detail else 'no output'}"


def candidate_modes(uid: int, setpriv: str | None) -> list[str]:
    if uid != 0:
        return ["userns"]
    return (["setpriv"] if setpriv and inside_system_dirs(setpriv) else []) + ["userns"]


def probe_bwrap(uid: int, user: SandboxUser, bwrap: str | None,
                setpriv: str | None) -> tuple[str | None, list[str]]:
    if bwrap is None:
        return None, ["bwrap not found"]
    errors = [] if setpriv or uid != 0 else ["setpriv (util-linux) not found"]
    for mode in candidate_modes(uid, setpriv):
        error = try_bwrap(BwrapConfig(bwrap=bwrap, mode=mode, setpriv=setpriv or "", user=user))
        if error is None:
            return mode, errors
        errors.append(error)
    return None, errors


def probe_host(cgroup_parent: str = "lamina", user: SandboxUser | None = None) -> HostProbe:
    user = user or SandboxUser()
    uid = os.geteuid()
    bwrap, setpriv = find_tool("bwrap"), find_tool("setpriv")
    mode, errors = probe_bwrap(uid, user, bwrap, setpriv)
    cgroups, cgroup_warnings = detect_hierarchy(cgroup_parent)
    return HostProbe(uid=uid, user=user, bwrap_path=bwrap, setpriv_path=setpriv, bwrap_mode=mode,
                     bwrap_errors=tuple(errors), cgroups=cgroups,
                     cgroup_warnings=tuple(cgroup_warnings))


def probe(cgroup_parent: str = "lamina") -> IsolationReport:
    """The report of the backend `build_sandbox()` would pick (for `lamina doctor`)."""
    host = probe_host(cgroup_parent)
    return host.report("bwrap" if host.bwrap_mode else "plain")
