"""How a function version becomes a sandbox: filesystem view, argv and Lambda's environment variables."""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lamina import limits
from lamina.model.function import FunctionVersion
from lamina.runtimes.catalog import Kind, RuntimeCatalog, RuntimeChoice
from lamina.sandbox.base import Bind, SandboxSpec
from lamina.store.blobs import BlobStore

BOOTSTRAP_DIR = Path(__file__).resolve().parent.parent / "runtimes" / "bootstrap"
# What every environment starts with, before the function's own variables.
BASE_ENV = {
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
    "PWD": "/var/task", "HOME": "/tmp", "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
}
DEV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "lamina"}


@dataclass(frozen=True)
class Launch:
    spec: SandboxSpec          # starts with the init burst CPU share
    choice: RuntimeChoice
    cpu_millicores: int        # the share invokes run at


class LaunchError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def host_millicores() -> int:
    return (os.cpu_count() or 1) * 1000


def cpu_millicores(memory_mb: int) -> int:
    """CPU proportional to memory: 1769 MB is one vCPU, capped at this host's cores."""
    return max(50, min(host_millicores(), round(memory_mb * 1000 / limits.MB_PER_VCPU)))


class Launcher:
    def __init__(self, blobs: BlobStore, catalog: RuntimeCatalog, layers_root: Path) -> None:
        self._blobs = blobs
        self._catalog = catalog
        self._layers_root = layers_root

    def opt_tree(self, digests: list[str]) -> Path | None:
        """The layers merged in order (a later layer's file wins), built once per layer list."""
        if not digests:
            return None
        key = hashlib.sha256("|".join(digests).encode()).hexdigest()
        target = self._layers_root / key
        if target.is_dir():
            return target
        tmp = self._layers_root / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        for digest in digests:
            shutil.copytree(self._blobs.tree_path(digest), tmp, symlinks=True, dirs_exist_ok=True)
        tmp.chmod(0o755)
        os.replace(tmp, target)
        return target

    def _argv(self, choice: RuntimeChoice, code: Path, opt: Path | None) -> tuple[str, ...]:
        if choice.kind is Kind.PYTHON:
            return (choice.executable, "/var/runtime/bootstrap.py")
        if choice.kind is Kind.NODE:
            return (choice.executable, "/var/runtime/bootstrap.js")
        for inside, host in (("/var/task/bootstrap", code / "bootstrap"),
                             ("/opt/bootstrap", opt / "bootstrap" if opt else None)):
            if host is not None and host.exists():
                if not os.access(host, os.X_OK):
                    raise LaunchError("Runtime.InvalidEntrypoint", f"fork/exec {inside}: permission denied")
                return (inside,)
        raise LaunchError("Runtime.InvalidEntrypoint",
                          "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]")

    def launch(self, v: FunctionVersion, init_type: str = "on-demand") -> Launch:
        c = v.config
        choice = self._catalog.resolve(c.runtime or "provided.al2023")
        if choice is None:
            raise LaunchError("Runtime.InvalidRuntime", f"Runtime {c.runtime} is not available on this host")
        code = self._blobs.tree_path(c.code.blob_hash)
        opt = self.opt_tree([layer.code_hash for layer in c.layers])
        binds = [Bind(str(code), "/var/task")]
        if opt is not None:
            binds.append(Bind(str(opt), "/opt"))
        if choice.kind is not Kind.PROVIDED:
            binds.append(Bind(str(BOOTSTRAP_DIR / choice.kind.value), "/var/runtime"))
        if choice.prefix is not None:
            binds.append(Bind(str(choice.prefix), "/var/lang"))
        env = self._environment(v, choice, init_type)
        argv = self._argv(choice, code, opt)
        wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
        if wrapper and choice.kind is not Kind.PROVIDED:
            argv = (wrapper, *argv)      # AWS runs the wrapper with the runtime's command as its arguments
        return Launch(SandboxSpec(
            argv=argv, env=env, binds=tuple(binds),
            workdir="/var/task", tmp_size_mb=c.ephemeral_mb, memory_mb=c.memory_mb,
            cpu_millicores=host_millicores(), hostname="lamina", label=v.name), choice,
            cpu_millicores(c.memory_mb))

    def runtime_spec(self, runtime: str) -> SandboxSpec | None:
        """The shape of a spec for a runtime, no function in it: what a sandbox can warm up for."""
        choice = self._catalog.resolve(runtime)
        if choice is None or choice.kind is Kind.PROVIDED:
            return None
        binds = [Bind(str(BOOTSTRAP_DIR / choice.kind.value), "/var/runtime")]
        if choice.prefix is not None:
            binds.append(Bind(str(choice.prefix), "/var/lang"))
        return SandboxSpec(argv=self._argv(choice, Path("/nonexistent"), None), env=dict(BASE_ENV),
                           binds=tuple(binds), workdir="/var/task", label="prewarm")

    def _environment(self, v: FunctionVersion, choice: RuntimeChoice, init_type: str) -> dict[str, str]:
        c = v.config
        env = {
            **BASE_ENV,
            "AWS_LAMBDA_FUNCTION_NAME": v.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": v.version, "AWS_REGION": v.region, "AWS_DEFAULT_REGION": v.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{c.runtime}", "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
            "AWS_LAMBDA_LOG_GROUP_NAME": c.log_group or f"/aws/lambda/{v.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"lamina/[{v.version}]{v.revision_id.replace('-', '')}",
            "_HANDLER": c.handler or "", **DEV_CREDENTIALS,
        }
        if choice.kind is Kind.NODE:
            env["NODE_PATH"] = "/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules"
        if choice.kind is Kind.PROVIDED:
            env.pop("AWS_EXECUTION_ENV")
        env.update(c.environment or {})
        return env
