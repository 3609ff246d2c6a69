"""A private Runtime API endpoint per environment: its own loopback port, its own session."""
from __future__ import annotations

import socket

import uvicorn

from lamina.runtime_api.routes import Authorize, RuntimeApp
from lamina.runtime_api.session import RuntimeSession


class RuntimeEndpoint:
    """Serves one RuntimeSession on 127.0.0.1:<free port> until closed."""

    def __init__(self, session: RuntimeSession, authorize: Authorize | None = None) -> None:
        self.session = session
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.setblocking(False)
        config = uvicorn.Config(RuntimeApp(session, authorize), lifespan="off", log_config=None, access_log=False,
                                http="httptools", loop="none", timeout_keep_alive=3600, proxy_headers=False)
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)   # what Server.serve() would set up

    @property
    def local(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()
        return str(host), int(port)

    @property
    def address(self) -> str:
        return "{}:{}".format(*self.local)

    async def start(self) -> None:
        await self._server.startup(sockets=[self._sock])

    async def close(self) -> None:
        """Stop at once: the runtime is already dead or dying, nothing is owed a graceful goodbye
        (uvicorn's own shutdown waits 100 ms for connections, which would sit on the invoke path)."""
        for server in self._server.servers:
            server.close()
        for connection in list(self._server.server_state.connections):
            connection.shutdown()
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        self._sock.close()
