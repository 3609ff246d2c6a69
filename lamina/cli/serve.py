"""`lamina serve`: build the services, say what isolation this host gives, run the ASGI server."""
from __future__ import annotations

import ipaddress
import sys

import uvicorn
from rich.console import Console

from lamina.app import build_app, build_services
from lamina.settings import DEV_ACCESS_KEY, DEV_ACCOUNT, DEV_SECRET_KEY, Settings
from lamina.telemetry import server_log


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings) -> None:
    err = Console(stderr=True)
    server_log.configure(settings.log_level)
    services = build_services(settings)
    if not _is_loopback(settings.host) and services.identities.only_dev_keys() and not settings.allow_public_dev_keys:
        err.print(f"[red]Refusing to listen on {settings.host}: only the public dev keys exist.[/red] Create keys "
                  "with `lamina keys create`, or set LAMINA_ALLOW_PUBLIC_DEV_KEYS=true.")
        sys.exit(2)
    report = services.sandbox.report
    err.print(f"[bold]Lamina[/bold] on http://{settings.host}:{settings.port}  data: {settings.data_dir.resolve()}")
    if settings.dev_keys:
        err.print(f"dev account {DEV_ACCOUNT}: AWS_ACCESS_KEY_ID={DEV_ACCESS_KEY} "
                  f"AWS_SECRET_ACCESS_KEY={DEV_SECRET_KEY}")
    err.print(f"isolation: {report.backend}, cgroups {report.cgroup_version}, namespaces "
              f"{','.join(report.namespaces) or 'none'}, limits {','.join(report.limits) or 'none'}")
    for warning in report.warnings:
        err.print(f"[bold yellow]WARNING[/bold yellow] {warning}")
    uvicorn.run(build_app(services), host=settings.host, port=settings.port, log_config=None,
                access_log=False, loop="uvloop", http="httptools", timeout_keep_alive=75, proxy_headers=False)
