"""Spawning helpers shared by the backends: output pipe, cgroup setup, and the pre-exec steps
(join the cgroup, set rlimits, drop privileges) that run in the child before anything executes."""
from __future__ import annotations

import ctypes
import fcntl
import os
import resource
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from lamina.sandbox.base import SandboxSpec
from lamina.sandbox.cgroups import Cgroup, CgroupHierarchy
from lamina.sandbox.identity import SandboxUser

PIPE_SIZE = 1 << 20            # best effort; capped by /proc/sys/fs/pipe-max-size
F_SETPIPE_SZ = 1031
PR_SET_PDEATHSIG = 1


@dataclass
class Launch:
    """Everything needed to fork+exec one sandbox's first process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    pass_fds: tuple[int, ...] = ()
    join_fds: list[int] = field(default_factory=list)      # cgroup.procs files to write b"0" into
    rlimits: list[tuple[int, int]] = field(default_factory=list)
    drop_to: SandboxUser | None = None                     # setuid/setgid before exec
    parent_death_signal: bool = False                      # SIGKILL the child when we die


def make_output_pipe() -> tuple[int, int]:
    """(read end, non-blocking; write end) of the pipe carrying stdout+stderr of the tree."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
    os.set_blocking(read_fd, False)
    return read_fd, write_fd


def memfd_with(data: bytes, name: str = "lamina") -> int:
    """An fd whose content is `data`, positioned at 0 (for bwrap --args / --ro-bind-data)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def check_spec(spec: SandboxSpec) -> None:
    if not spec.argv:
        raise ValueError("SandboxSpec.argv is empty")
    for bind in spec.binds:
        if not os.path.isabs(bind.dest) or not os.path.exists(bind.source):
            raise FileNotFoundError(f"bind {bind.source} -> {bind.dest}: source missing or dest not absolute")
    if not os.path.isabs(spec.workdir):
        raise ValueError(f"workdir must be absolute: {spec.workdir!r}")


async def prepare_cgroup(hierarchy: CgroupHierarchy | None, spec: SandboxSpec) -> Cgroup | None:
    """Create the sandbox's cgroup and apply its limits (None when there are no cgroups)."""
    if hierarchy is None:
        return None
    cgroup = hierarchy.create(spec.label)
    try:
        cgroup.set_limits(spec.memory_mb * 1024 * 1024, spec.cpu_millicores, spec.pids_max)
    except OSError:
        await cgroup.remove()
        raise
    return cgroup


def fallback_rlimits(cgroup: Cgroup | None, spec: SandboxSpec, dedicated_uid: bool) -> list[tuple[int, int]]:
    """Per-process rlimits standing in for missing cgroup controllers."""
    controllers = cgroup.controllers if cgroup else ()
    limits = []
    if "memory" not in controllers:
        limits.append((resource.RLIMIT_DATA, spec.memory_mb * 1024 * 1024))
    if "pids" not in controllers and dedicated_uid:
        # RLIMIT_NPROC counts every process of the uid, so only use it for a dedicated uid.
        limits.append((resource.RLIMIT_NPROC, spec.pids_max))
    return limits


def _report(step: str, error: BaseException) -> None:
    """Tell the reader of the output pipe (fd 2 by now) why the child gave up."""
    try:
        os.write(2, f"lamina sandbox: {step} failed before exec: {error}\n".encode())
    except OSError:
        pass


def make_preexec(launch: Launch) -> Callable[[], None]:
    """The child-side steps, kept trivial: it runs between fork and exec."""
    libc = ctypes.CDLL(None, use_errno=True) if launch.parent_death_signal else None
    parent = os.getpid()

    def preexec() -> None:
        step = "joining the cgroup"
        try:
            for fd in launch.join_fds:
                os.write(fd, b"0")
            step = "setting rlimits"
            for res, value in launch.rlimits:
                resource.setrlimit(res, (value, value))
            step = "dropping privileges"
            if launch.drop_to is not None:
                os.setgroups([])
                os.setresgid(launch.drop_to.gid, launch.drop_to.gid, launch.drop_to.gid)
                os.setresuid(launch.drop_to.uid, launch.drop_to.uid, launch.drop_to.uid)
            if libc is not None:         # after setuid: a credential change clears it
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(1)
        except BaseException as e:
            _report(step, e)
            raise

    return preexec


def spawn(launch: Launch, output_write_fd: int) -> subprocess.Popen[bytes]:
    """fork+exec in a new session; stdin /dev/null, stdout+stderr to the output pipe."""
    try:
        return subprocess.Popen(
            launch.argv, env=launch.env, cwd=launch.cwd,
            stdin=subprocess.DEVNULL, stdout=output_write_fd, stderr=output_write_fd,
            pass_fds=launch.pass_fds, close_fds=True, start_new_session=True,
            preexec_fn=make_preexec(launch),
        )
    finally:
        for fd in launch.join_fds:
            os.close(fd)


async def spawn_limited(launch: Launch, cgroup: Cgroup | None, spec: SandboxSpec,
                        dedicated_uid: bool) -> tuple[subprocess.Popen[bytes], int]:
    """Spawn `launch` inside `cgroup` (joined before exec) with the fallback rlimits; returns the process
    and the read end of its output pipe. On failure the cgroup is removed and nothing is left open."""
    read_fd = write_fd = -1
    try:
        launch.join_fds = cgroup.open_join_fds() if cgroup else []
        launch.rlimits = fallback_rlimits(cgroup, spec, dedicated_uid=dedicated_uid)
        read_fd, write_fd = make_output_pipe()
        return spawn(launch, write_fd), read_fd
    except BaseException:
        if read_fd >= 0:
            os.close(read_fd)
        if cgroup is not None:
            await cgroup.remove()
        raise
    finally:
        if write_fd >= 0:
            os.close(write_fd)
