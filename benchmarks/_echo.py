"""A minimal HTTP/1.1 keep-alive echo server on 127.0.0.1: the floor for a loopback request.

It answers every request with 200 and the request body. Three implementations, so a benchmark
can pick the fastest as its baseline:
  asyncio      asyncio.Protocol on the default event loop, hand-rolled parsing
  uvloop       the same Protocol on uvloop (the loop `lamina serve` uses)
  http.server  http.server.ThreadingHTTPServer, one thread per connection

Prints the port on stdout, then serves until SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import http.server
import signal
import socket
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
                    break
            total = end + 4 + length
            if len(self.buf) < total:
                break
            body = self.buf[end + 4:total]
            self.buf = self.buf[total:]
            out.append(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\n\r\n" + body)
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


def serve_asyncio(use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop
        uvloop.install()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(main())


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_http_server() -> None:
    http.server.ThreadingHTTPServer.daemon_threads = True
    http.server.ThreadingHTTPServer.request_queue_size = 1024
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    print(srv.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=("asyncio", "uvloop", "http.server"), default="uvloop")
    impl = ap.parse_args().impl
    if impl == "http.server":
        serve_http_server()
    else:
        serve_asyncio(impl == "uvloop")
