"""Composition root: Settings -> stores -> services -> ASGI app. The only place long-lived objects are built."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from lamina.api.server import ApiApp
from lamina.control.aliases import AliasService
from lamina.control.functions import FunctionService
from lamina.control.identities import IdentityService
from lamina.control.layers import LayerService
from lamina.control.versions import VersionService
from lamina.events.queue import EventQueue
from lamina.events.worker import EventService
from lamina.invoke.launch import Launcher
from lamina.invoke.placement import LocalPlacement
from lamina.invoke.pool import Pool
from lamina.invoke.router import Invoker
from lamina.invoke.throttle import Throttle
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.sandbox.auto import build_sandbox
from lamina.sandbox.base import Sandbox
from lamina.settings import Settings
from lamina.store.blobs import BlobStore
from lamina.store.sealing import Sealer
from lamina.store.sql import SqlStore, sqlite_store

log = logging.getLogger("lamina")


@dataclass
class Services:
    """Everything a request handler may use, wired once."""

    settings: Settings
    store: SqlStore
    blobs: BlobStore
    catalog: RuntimeCatalog
    identities: IdentityService
    functions: FunctionService
    versions: VersionService
    aliases: AliasService
    layers: LayerService
    invoker: Invoker
    events: EventService
    pool: Pool
    sandbox: Sandbox
    launcher: Launcher

    @property
    def default_region(self) -> str:
        return self.settings.region

    @property
    def public_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def settings_account_concurrency(self) -> int:
        return self.settings.account_concurrency

    def host_report(self) -> dict[str, Any]:
        runtimes = {}
        for runtime in self.catalog.runnable():
            choice = self.catalog.resolve(runtime)
            runtimes[runtime] = None if choice is None else {
                "executable": choice.executable, "prefix": str(choice.prefix) if choice.prefix else None,
                "note": choice.note}
        return {"isolation": asdict(self.sandbox.report), "runtimes": runtimes}

    async def start(self) -> None:
        self.pool.start()
        self.events.start()
        specs = [s for r in self.settings.prewarm_runtimes if (s := self.launcher.runtime_spec(r)) is not None]
        for problem in await self.sandbox.prewarm(specs):
            log.warning("no fast start: %s", problem)

    async def close(self) -> None:
        await self.events.close()
        await self.pool.close()
        await self.sandbox.close()
        self.store.close()


def build_services(settings: Settings) -> Services:
    data = settings.data_dir.resolve()
    store = sqlite_store(data / "lamina.db", Sealer.from_key_file(data / "keys" / "store.key"))
    blobs = BlobStore(data / "code")
    catalog = RuntimeCatalog(settings.pyenv_root, settings.node_binary, settings.python_fallback,
                             settings.runtime_map)
    identities = IdentityService(store)
    if settings.dev_keys:
        identities.ensure_dev_key()
    layers = LayerService(store, blobs)
    functions = FunctionService(store, blobs, catalog, layers)
    versions = VersionService(store, functions)
    sandbox = build_sandbox(prefer=settings.sandbox)
    pool = Pool(settings.max_environments, settings.keep_alive_s)
    launcher = Launcher(blobs, catalog, data / "opt")
    invoker = Invoker(versions, Throttle(settings.account_concurrency), LocalPlacement(pool), launcher, sandbox)
    events = EventService(EventQueue(store.engine), invoker)
    return Services(settings, store, blobs, catalog, identities, functions, versions, AliasService(store, functions),
                    layers, invoker, events, pool, sandbox, launcher)


def build_app(services: Services) -> Any:
    api = ApiApp(services)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await services.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await services.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await api(scope, receive, send)

    return app
