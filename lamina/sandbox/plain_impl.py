"""PlainSandbox: the fallback without bubblewrap or namespaces. A plain subprocess in its own
session, with cgroups when writable and rlimits otherwise. NO filesystem isolation.

Because it cannot mount anything, binds are translated instead of mounted:
  * cwd is `spec.workdir` translated (the host source of the bind whose dest contains it);
  * every argv element and env value is rewritten: each ':'-separated piece equal to a bind's
    dest, or starting with `dest/`, gets the dest replaced by the bind's source (longest dest
    first). So `/var/task/app.py` -> `<source>/app.py`, `PATH=/var/lang/bin:/usr/bin` ->
    `PATH=<lang source>/bin:/usr/bin`. Paths the program computes itself are NOT translated;
  * /tmp is a fresh private host directory (mode 0700, removed by kill()), mapped like a bind
    and exported as TMPDIR; its size is not limited;
  * read-only binds are not enforced (the file permissions of the source decide).
When the caller is root the program runs as the sandbox uid (993), so every bind source must
be reachable by "others" (o+x on each parent directory): start() refuses otherwise.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile

from lamina.sandbox.base import FreshStarts, IsolationReport, SandboxSpec
from lamina.sandbox.cgroups import CgroupHierarchy
from lamina.sandbox.identity import SandboxUser
from lamina.sandbox.launch import (
    Launch,
    check_spec,
    prepare_cgroup,
    spawn_limited,
)
from lamina.sandbox.process import TreeProcess

PathMap = list[tuple[str, str]]          # (dest inside, source on host), longest dest first


def path_map(spec: SandboxSpec, private_tmp: str) -> PathMap:
    pairs = [(b.dest.rstrip("/"), b.source.rstrip("/") or "/") for b in spec.binds if b.dest.rstrip("/")]
    pairs.append(("/tmp", private_tmp))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def translate_path(path: str, mapping: PathMap) -> str:
    for dest, source in mapping:
        if path == dest or path.startswith(dest + "/"):
            return source + path[len(dest):]
    return path


def translate_value(value: str, mapping: PathMap) -> str:
    return ":".join(translate_path(piece, mapping) for piece in value.split(":"))


def reachable_by_others(path: str) -> bool:
    """True when a uid without special rights can use `path`: o+x on it (o+r for a file)
    and o+x on every parent directory."""
    path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not mode & (stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH):
        return False
    parent = os.path.dirname(path)
    while True:
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if parent == "/":
            return True
        parent = os.path.dirname(parent)


def make_private_tmp(label: str, user: SandboxUser | None, parent: str | None) -> str:
    path = tempfile.mkdtemp(prefix=f"lamina-{label}-", dir=parent)
    if user is not None:
        os.chown(path, user.uid, user.gid)
    return path


class PlainSandbox(FreshStarts):
    """`Sandbox` without namespaces; `user` None runs code as the caller's own uid."""

    def __init__(self, report: IsolationReport, cgroups: CgroupHierarchy | None = None,
                 user: SandboxUser | None = None, tmp_parent: str | None = None) -> None:
        self.report = report
        self._cgroups = cgroups
        self._user = user
        self._tmp_parent = tmp_parent

    def _check_reachable(self, spec: SandboxSpec) -> None:
        if self._user is None:
            return
        for bind in spec.binds:
            if not reachable_by_others(bind.source):
                raise PermissionError(
                    f"bind source {bind.source} is not reachable by uid {self._user.uid} "
                    f"(a parent directory lacks o+x); PlainSandbox cannot mount it elsewhere")

    def _launch(self, spec: SandboxSpec, private_tmp: str) -> Launch:
        mapping = path_map(spec, private_tmp)
        env = {k: translate_value(v, mapping) for k, v in spec.env.items()}
        env.setdefault("TMPDIR", private_tmp)
        return Launch(argv=[translate_path(a, mapping) for a in spec.argv], env=env,
                      cwd=translate_path(spec.workdir, mapping), drop_to=self._user,
                      parent_death_signal=True)

    async def start(self, spec: SandboxSpec) -> TreeProcess:
        check_spec(spec)
        self._check_reachable(spec)
        private_tmp = make_private_tmp(spec.label, self._user, self._tmp_parent)
        try:
            launch = self._launch(spec, private_tmp)
            cgroup = await prepare_cgroup(self._cgroups, spec)
            popen, read_fd = await spawn_limited(launch, cgroup, spec, dedicated_uid=self._user is not None)
        except BaseException:
            shutil.rmtree(private_tmp, ignore_errors=True)
            raise
        return TreeProcess(popen, read_fd, cgroup, label=spec.label,
                           cleanup=lambda: shutil.rmtree(private_tmp, ignore_errors=True))
