"""Whether zygotes can serve this host and a spec, and which zygote (`ZygoteKey`) serves it.

A spec is servable when it runs the Python bootstrap under a /var/lang/bin/python3.8+ bound from
one prefix and sets nothing that changes interpreter start-up; the key groups specs that can
share a zygote (prefix, interpreter, start-up environment). See lamina/sandbox/zygote_impl.py.
"""
from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, fields

from lamina.sandbox.base import IsolationReport, SandboxSpec
from lamina.sandbox.cgroups import CgroupHierarchy
from lamina.sandbox.zygote_child import MAX_FDS, PIVOT_ROOT
from lamina.sandbox.zygote_plan import MountTrees

BOOTSTRAP = "/var/runtime/bootstrap.py"
PYTHON_RE = re.compile(r"/var/lang/bin/python3\.(\d+)")
MIN_MINOR = 8
# Read by the interpreter or the dynamic loader at start-up: a zygote starts with exactly
# these values of the spec (they are part of its key), so its children match a fresh start.
STARTUP_VARS = ("HOME", "LANG", "LANGUAGE", "LD_LIBRARY_PATH")
EMULATED_VARS = ("PYTHONPATH",)           # applied in the child as start-up would have


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


def bind_sources(spec: SandboxSpec, dest: str) -> list[str]:
    return [b.source for b in spec.binds if b.dest.rstrip("/") == dest]


def why_not(spec: SandboxSpec) -> str | None:
    """Why the zygote would not run `spec` the way bwrap does (None: it can)."""
    argv = spec.argv
    if len(argv) < 2 or argv[1] != BOOTSTRAP:
        return f"not the Python bootstrap ({' '.join(argv[:2])})"
    match = PYTHON_RE.fullmatch(argv[0])
    if match is None or int(match.group(1)) < MIN_MINOR:
        return f"interpreter {argv[0]} is not a /var/lang/bin/python3.{MIN_MINOR}+"
    lang, runtime = bind_sources(spec, "/var/lang"), bind_sources(spec, "/var/runtime")
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
        return cls(os.path.realpath(bind_sources(spec, "/var/lang")[0]), spec.argv[0], env)

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
