"""The `lamina` command."""
from __future__ import annotations

import base64
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from lamina.cli.client import admin_call, lambda_client

app = typer.Typer(help="Lamina: self-hosted functions that speak the AWS Lambda API.", no_args_is_help=True)
keys_app = typer.Typer(help="Access keys of accounts (operator account only).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
out = Console()


@app.command()
def serve(host: Optional[str] = typer.Option(None, help="listen address (default 127.0.0.1)"),
          port: Optional[int] = typer.Option(None, help="port (default 9000)"),
          data_dir: Optional[Path] = typer.Option(None, help="data directory (default ./.lamina)")) -> None:
    """Run the Lamina server (embedded store)."""
    from lamina.cli.serve import serve as run
    from lamina.settings import load_settings
    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None}
    run(load_settings(**overrides))


def _zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                info = zipfile.ZipInfo.from_file(path, path.relative_to(folder).as_posix())
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def _read_package(path: Path) -> bytes:
    if path.is_dir():
        return _zip_folder(path)
    data = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise typer.BadParameter(f"{path} is neither a folder nor a zip file")
    return data


class _ProgressBody(io.BytesIO):
    """The signed request body, reporting each block as the HTTP client reads it."""

    def __init__(self, data: bytes, advance: Any) -> None:
        super().__init__(data)
        self._advance = advance

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._advance(len(chunk))
        return chunk


def _send_with_progress(client: Any, size: int, send: Any) -> Any:
    """Show a bar for uploads worth watching (the body is streamed after signing); small ones just go."""
    if size < 1 << 20:
        return send()
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True)) as progress:
        task = progress.add_task("uploading", total=None)

        def stream(request: Any, **_: Any) -> None:
            body = request.body if isinstance(request.body, bytes) else None
            if body:
                progress.update(task, total=len(body))
                request.body = _ProgressBody(body, lambda n: progress.advance(task, n))

        client.meta.events.register("before-send.lambda.*", stream)
        try:
            return send()
        finally:
            client.meta.events.unregister("before-send.lambda.*", stream)


@app.command()
def deploy(path: Path, name: str = typer.Option(..., "--name"), runtime: str = typer.Option("python3.12"),
           handler: str = typer.Option("lambda_function.handler"), memory: int = typer.Option(128),
           timeout: int = typer.Option(3), role: str = typer.Option("arn:aws:iam::000000000000:role/lambda-role"),
           publish: bool = typer.Option(False)) -> None:
    """Create a function from a folder or zip, or update its code if it exists."""
    data = _read_package(path)
    client = lambda_client()
    try:
        client.get_function(FunctionName=name)
        exists = True
    except client.exceptions.ResourceNotFoundException:
        exists = False
    if exists:
        cfg = _send_with_progress(client, len(data), lambda: client.update_function_code(
            FunctionName=name, ZipFile=data, Publish=publish))
        client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
        client.update_function_configuration(FunctionName=name, Runtime=runtime, Handler=handler,
                                             MemorySize=memory, Timeout=timeout)
    else:
        cfg = _send_with_progress(client, len(data), lambda: client.create_function(
            FunctionName=name, Runtime=runtime, Handler=handler, Role=role, Code={"ZipFile": data},
            MemorySize=memory, Timeout=timeout, Publish=publish))
    out.print(f"[green]{'updated' if exists else 'created'}[/green] {cfg['FunctionArn']} "
              f"({cfg['CodeSize']} bytes, {cfg['CodeSha256']})")


@app.command()
def functions() -> None:
    """List functions as a table."""
    client = lambda_client()
    table = Table("Name", "Runtime", "Handler", "Memory", "Timeout", "State", "Last modified")
    for page in client.get_paginator("list_functions").paginate():
        for f in page["Functions"]:
            table.add_row(f["FunctionName"], f.get("Runtime") or "-", f.get("Handler") or "-", str(f["MemorySize"]),
                          str(f["Timeout"]), f.get("State", "-"), f["LastModified"])
    out.print(table)


@app.command()
def invoke(name: str, payload: str = typer.Option("{}", help="JSON event"),
           qualifier: Optional[str] = typer.Option(None),
           log: bool = typer.Option(False, help="print the log tail")) -> None:
    """Invoke a function synchronously and print its result."""
    client = lambda_client()
    kwargs: dict[str, Any] = {"FunctionName": name, "Payload": payload.encode(), "LogType": "Tail" if log else "None"}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    resp = client.invoke(**kwargs)
    if log and "LogResult" in resp:
        sys.stderr.write(base64.b64decode(resp["LogResult"]).decode(errors="replace"))
    sys.stdout.write(resp["Payload"].read().decode() + "\n")
    if resp.get("FunctionError"):
        raise typer.Exit(1)


@app.command()
def doctor() -> None:
    """What this host supports for isolation and which runtimes Lamina found."""
    try:
        report = admin_call("GET", "/_lamina/v1/host")
        source = "server"
    except Exception:  # noqa: BLE001 - no server: probe this host directly
        report = _local_host_report()
        source = "local probe (no server reachable)"
    iso = report["isolation"]
    out.print(f"[bold]Isolation[/bold] ({source}): backend {iso['backend']}, cgroups {iso['cgroup_version']}")
    out.print(f"  namespaces: {', '.join(iso['namespaces']) or 'none'}")
    out.print(f"  limits: {', '.join(iso['limits']) or 'none'}; code runs as uid {iso['unprivileged_uid']}")
    if "zygote" in iso:
        out.print(f"  fast Python starts (zygote): {iso['zygote']}")
    for w in iso["warnings"]:
        out.print(f"  [yellow]fallback:[/yellow] {w}")
    table = Table("Runtime", "Interpreter", "Note")
    for runtime, choice in report["runtimes"].items():
        table.add_row(runtime, choice["prefix"] or choice["executable"] if choice else "[red]missing[/red]",
                      choice["note"] if choice else "not installed on this host")
    out.print(table)


def _local_host_report() -> dict[str, Any]:
    from dataclasses import asdict

    from lamina.runtimes.catalog import RuntimeCatalog
    from lamina.sandbox.probe import probe
    from lamina.settings import load_settings
    s = load_settings()
    catalog = RuntimeCatalog(s.pyenv_root, s.node_binary, s.python_fallback, s.runtime_map)
    runtimes = {}
    for r in catalog.runnable():
        c = catalog.resolve(r)
        runtimes[r] = None if c is None else {"executable": c.executable,
                                              "prefix": str(c.prefix) if c.prefix else None, "note": c.note}
    return {"isolation": asdict(probe()), "runtimes": runtimes}


@app.command()
def versions(name: str) -> None:
    """A function's versions as a table."""
    table = Table("Version", "Code SHA-256", "Description", "Last modified")
    for page in lambda_client().get_paginator("list_versions_by_function").paginate(FunctionName=name):
        for v in page["Versions"]:
            table.add_row(v["Version"], v["CodeSha256"], v.get("Description", ""), v["LastModified"])
    out.print(table)


@app.command()
def aliases(name: str) -> None:
    """A function's aliases and their routing weights."""
    table = Table("Alias", "Version", "Additional weights", "Description")
    for page in lambda_client().get_paginator("list_aliases").paginate(FunctionName=name):
        for a in page["Aliases"]:
            weights = a.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
            table.add_row(a["Name"], a["FunctionVersion"],
                          ", ".join(f"{v}: {w:.0%}" for v, w in weights.items()) or "-", a.get("Description", ""))
    out.print(table)


@app.command()
def layers() -> None:
    """Layers with their latest version."""
    table = Table("Layer", "Latest", "Runtimes", "Created")
    for page in lambda_client().get_paginator("list_layers").paginate():
        for layer in page["Layers"]:
            latest = layer["LatestMatchingVersion"]
            table.add_row(layer["LayerName"], str(latest["Version"]),
                          ", ".join(latest.get("CompatibleRuntimes", [])) or "-", latest["CreatedDate"])
    out.print(table)


@keys_app.command("create")
def keys_create(account: str = typer.Option(..., help="12-digit account id")) -> None:
    """Create an access key for an account and print its secret once."""
    key = admin_call("POST", "/_lamina/v1/keys", {"Account": account})
    out.print(json.dumps(key, indent=2))


@keys_app.command("list")
def keys_list() -> None:
    table = Table("AccessKeyId", "Account", "Created")
    for k in admin_call("GET", "/_lamina/v1/keys")["Keys"]:
        table.add_row(k["AccessKeyId"], k["Account"], k["Created"])
    out.print(table)


@keys_app.command("delete")
def keys_delete(access_key_id: str) -> None:
    admin_call("DELETE", f"/_lamina/v1/keys/{access_key_id}")
    out.print(f"deleted {access_key_id}")


if __name__ == "__main__":
    app()
