"""Collects an environment's merged stdout/stderr and hands out what each invocation wrote."""
from __future__ import annotations

import asyncio
import os


class OutputCapture:
    MAX_KEPT = 1 << 20      # older bytes are dropped; only the tail matters for LogType=Tail

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._chunks: list[bytes] = []
        self._size = 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._drain)
        self._closed = False

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            self._chunks.append(chunk)
            self._size += len(chunk)
            while self._size > self.MAX_KEPT and len(self._chunks) > 1:
                self._size -= len(self._chunks.pop(0))

    def take(self) -> bytes:
        """Everything written so far: the runtime flushed before it posted, so it is all in the pipe."""
        if not self._closed:
            self._drain()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._fd)
