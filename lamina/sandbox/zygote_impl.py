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

The control protocol is described in lamina/sandbox/zygote_process.py. The zygote never reads
a spec, so no secret of one function ever lands in memory that later sandboxes inherit.
Lamina reads init's exit status from /proc/<pid>/stat (field 52) of the zombie the zygote holds.
When a zygote dies, its sandboxes die with it (parent-death signal).

Modules: zygote_eligibility (which hosts and specs, which zygote), zygote_plan (bwrap options
as mount operations, detached mount trees), zygote_process (one zygote process), zygote_handle
(a forked child from Lamina's side), zygote_spares (children forked ahead), this one (the
Sandbox: routing between zygotes and bwrap, and the two phases of a start).
"""
from __future__ import annotations

import array
import asyncio
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterable
from typing import Any, cast

from lamina.sandbox.base import IsolationReport, SandboxProcess, SandboxSpec
from lamina.sandbox.bwrap_impl import BwrapSandbox, bwrap_exit_status, bwrap_options
from lamina.sandbox.cgroups import Cgroup, CgroupHierarchy
from lamina.sandbox.launch import check_spec, fallback_rlimits, make_output_pipe, memfd_with, prepare_cgroup
from lamina.sandbox.process import TreeProcess
from lamina.sandbox.zygote_eligibility import ZygoteKey, bind_sources, why_not, zygote_report, zygote_unavailable
from lamina.sandbox.zygote_handle import ZygoteChild, await_ready, channel_error, discard_cgroup, read_available
from lamina.sandbox.zygote_plan import FdList, MountTrees, NotServable, zygote_plan
from lamina.sandbox.zygote_process import REPLY_TIMEOUT, WARM_MODULES, Zygote, ZygoteError
from lamina.sandbox.zygote_spares import Spares

log = logging.getLogger(__name__)

READY_TIMEOUT = 10.0          # a child from fork to "about to run the bootstrap"
RETRY_AFTER = 30.0            # a zygote that failed to start is not retried for this long
MAX_SETUP_FAILURES = 3        # consecutive child setup failures before a key goes to bwrap


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
        self._spares = Spares(cgroups, self._live, self._request_child)
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
        return self._spares.pids()

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
                    await self._spares.schedule_refill(key, delay=0.0)
            if reason is not None:
                problems.append(f"{' '.join(spec.argv[:1])}: {reason}")
        return problems

    async def close(self) -> None:
        """Stop every zygote (their sandboxes die with them)."""
        starting, self._starting = list(self._starting.values()), {}
        refills = self._spares.take_refills()
        for task in starting + refills:
            task.cancel()
        await asyncio.gather(*starting, *refills, return_exceptions=True)
        await self._spares.discard_all()
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
            task = loop.create_task(self._launch(key, bind_sources(spec, "/var/runtime")[0]))
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
            self._spares.schedule_refill(key, delay=0.0)
        return zygote

    async def _fork(self, zygote: Zygote, spec: SandboxSpec) -> TreeProcess | bytes:
        """The sandbox, or the output of a child whose setup failed: from the spare, or forked
        now (the spec then travels while the zygote forks and the child joins its cgroup)."""
        key = zygote.key
        spare = self._spares.take(key)
        if self._use_spares:
            self._spares.schedule_refill(key)
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
            await discard_cgroup(cgroup, spec.label)
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
            await discard_cgroup(cgroup, spec.label)     # the child may have joined it
            raise
        tree = TreeProcess(cast("subprocess.Popen[bytes]", child), read_fd, cgroup, label=spec.label,
                           exit_status=bwrap_exit_status, supervisor=True, cleanup=child.release)
        try:
            ok = await await_ready(ready_r, READY_TIMEOUT)
        except BaseException:
            channel.close()
            await tree.kill()
            raise
        finally:
            os.close(ready_r)
        if ok:
            channel.close()
            return tree
        output = read_available(read_fd) + channel_error(channel)
        channel.close()
        await tree.kill()
        return output or b"setup failed without output"

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
