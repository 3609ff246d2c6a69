"""One zygote process, from Lamina's side: its start, its log, and the Lamina end of its
control socket.

Control protocol (SOCK_SEQPACKET socketpair; the zygote's end is fd 3 of the zygote only -
children close it before anything else):
    zygote -> Lamina   b"Z" + JSON hello, once ready
    Lamina -> zygote   b"F" + SCM_RIGHTS [request memfd, channel, cgroup.procs fds...]
    zygote -> Lamina   b"P<pid>" (or b"E<error>"), in request order
    Lamina -> zygote   b"R<pid>": reap that child (held as a zombie until then, so its pid
                       cannot be reused while Lamina still signals it or reads its status)
The child side is lamina/sandbox/zygote_child.py; the overview is in zygote_impl.py.
"""
from __future__ import annotations

import array
import asyncio
import collections
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from lamina.sandbox.bwrap_impl import SYSTEM_DIRS
from lamina.sandbox.launch import Launch, make_output_pipe, memfd_with, spawn
from lamina.sandbox.zygote_eligibility import BOOTSTRAP, ZygoteKey

log = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).with_name("zygote_child.py")
# Modules the zygote imports before forking: the bootstrap's own imports and what its first
# requests pull in lazily. Never user code.
WARM_MODULES = ("json", "logging", "socket", "time", "importlib", "importlib.machinery", "types",
                "traceback", "linecache", "tokenize", "urllib.parse", "encodings.idna", "selectors")
# The zygote's own root needs only what the dynamic loader and interpreter start-up read (every
# mount in it is copied by each child's unshare(CLONE_NEWNS)); sandboxes get all of ETC_FILES.
ZYGOTE_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
START_TIMEOUT = 15.0          # a zygote's own start (interpreter + imports + compile)
REPLY_TIMEOUT = 5.0           # the zygote answering one fork request


class ZygoteError(RuntimeError):
    """The zygote could not be started or did not answer."""


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
