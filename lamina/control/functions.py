"""Function use cases: create, read, list, update code and configuration, delete, tags."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from lamina import limits
from lamina.arn import FunctionRef
from lamina.control import code as code_ops
from lamina.control import validation as val
from lamina.control.clock import last_modified
from lamina.control.scope import Scope
from lamina.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lamina.model.function import LATEST, Code, FunctionConfig, FunctionVersion, State, UpdateStatus
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.store.base import Conflict, FunctionKey, Store
from lamina.store.blobs import BlobStore

if TYPE_CHECKING:
    from lamina.control.layers import LayerService

REVISION_MISMATCH = ("The Revision Id provided does not match the latest Revision Id. "
                     "Call the GetFunction/GetAlias API to retrieve the latest Revision Id")


@dataclass(frozen=True)
class ConfigInput:
    """Fields a caller may set on create or on update configuration; None = not given."""

    runtime: str | None = None
    role: str | None = None
    handler: str | None = None
    description: str | None = None
    timeout_s: int | None = None
    memory_mb: int | None = None
    ephemeral_mb: int | None = None
    environment: dict[str, str] | None = None
    architectures: list[str] | None = None
    layers: list[str] | None = None
    tracing_mode: str | None = None
    tenancy_mode: str | None = None


def new_revision() -> str:
    return str(uuid.uuid4())


class FunctionService:
    def __init__(self, store: Store, blobs: BlobStore, catalog: RuntimeCatalog, layers: LayerService) -> None:
        self._store = store
        self._blobs = blobs
        self._catalog = catalog
        self._layers = layers          # resolves layer ARNs to attachments

    # -- validation --------------------------------------------------------------------
    def _validate(self, cfg: ConfigInput, creating: bool) -> None:
        v = val.Violations()
        val.check_range(v, cfg.memory_mb, "memorySize", limits.MEMORY_MIN_MB, limits.MEMORY_MAX_MB)
        val.check_range(v, cfg.timeout_s, "timeout", limits.TIMEOUT_MIN_S, limits.TIMEOUT_MAX_S)
        val.check_range(v, cfg.ephemeral_mb, "ephemeralStorage.size", limits.EPHEMERAL_MIN_MB,
                        limits.EPHEMERAL_MAX_MB)
        val.check_pattern(v, cfg.role, "role", val.ROLE_PATTERN)
        val.check_pattern(v, cfg.handler, "handler", val.HANDLER_PATTERN, limits.HANDLER_MAX_CHARS)
        if cfg.description is not None and len(cfg.description) > limits.DESCRIPTION_MAX_CHARS:
            v.add(cfg.description, "description", "Member must have length less than or equal to 256")
        val.check_architectures(v, cfg.architectures)
        val.check_layers_format(v, cfg.layers)
        if cfg.tracing_mode is not None and cfg.tracing_mode not in ("Active", "PassThrough"):
            v.add(cfg.tracing_mode, "tracingConfig.mode", "Member must satisfy enum value set: [Active, PassThrough]")
        v.raise_if_any()
        val.check_runtime(cfg.runtime, self._catalog.runnable())
        val.check_environment(cfg.environment)
        if creating and cfg.role is None:
            raise InvalidParameterValueException("The role defined for the function cannot be assumed by Lambda.")
        if creating and cfg.runtime is not None and cfg.handler is None:
            raise InvalidParameterValueException("Handler is required for Zip package type.")

    @staticmethod
    def _check_name(name: str) -> None:
        v = val.Violations()
        if len(name) > limits.FUNCTION_NAME_MAX_CHARS:
            raise InvalidParameterValueException(
                f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy constraint: "
                "Member must have length less than or equal to 64")
        val.check_pattern(v, name, "functionName", r"[a-zA-Z0-9-_]+")
        v.raise_if_any()

    # -- reads -------------------------------------------------------------------------
    def get_version(self, scope: Scope, ref: FunctionRef, qualifier: str | None = None) -> FunctionVersion:
        found = self._store.get_version(scope.key(ref.name), qualifier or LATEST)
        if found is None:
            suffix = f":{qualifier}" if qualifier else ""
            raise ResourceNotFoundException(f"Function not found: {scope.arn(ref.name)}{suffix}")
        return found

    def list_latest(self, scope: Scope) -> list[FunctionVersion]:
        return self._store.list_latest(scope.account, scope.region)

    def list_all_versions(self, scope: Scope) -> list[FunctionVersion]:
        out: list[FunctionVersion] = []
        for latest in self._store.list_latest(scope.account, scope.region):
            out.extend(self._store.list_versions(scope.key(latest.name)))
        return out

    def tags(self, scope: Scope, name: str) -> dict[str, str]:
        tags = self._store.get_tags(scope.key(name))
        if tags is None:
            raise ResourceNotFoundException(f"Function not found: {scope.arn(name)}")
        return tags

    # -- writes ------------------------------------------------------------------------
    def _code_from_zip(self, zip_b64: str | None, s3: bool, layers_size: int) -> Code:
        if s3:
            raise InvalidParameterValueException(
                "S3Bucket/S3Key code locations are not supported yet: Lamina has no object store. "
                "Send the archive as ZipFile.")
        if zip_b64 is None:
            raise InvalidParameterValueException("Please provide a source for function code.")
        data = code_ops.decode_zip_field(zip_b64)
        return code_ops.ingest(self._blobs, data, limits.UNZIPPED_MAX_BYTES - layers_size)

    def create(self, scope: Scope, name: str, cfg: ConfigInput, zip_b64: str | None, s3: bool,
               tags: dict[str, str]) -> FunctionVersion:
        self._check_name(name)
        self._validate(cfg, creating=True)
        layers = self._layers.resolve(scope, cfg.layers or [])
        code = self._code_from_zip(zip_b64, s3, sum(a.unzipped_size for a in layers))
        config = FunctionConfig(
            runtime=cfg.runtime, role=cfg.role or "", handler=cfg.handler, code=code,
            description=cfg.description or "", timeout_s=cfg.timeout_s or limits.TIMEOUT_DEFAULT_S,
            memory_mb=cfg.memory_mb or limits.MEMORY_DEFAULT_MB,
            ephemeral_mb=cfg.ephemeral_mb or limits.EPHEMERAL_DEFAULT_MB, environment=cfg.environment,
            architectures=tuple(cfg.architectures or ("x86_64",)), layers=tuple(layers),
            tracing_mode=cfg.tracing_mode or "PassThrough", tenancy_mode=cfg.tenancy_mode,
            log_group=f"/aws/lambda/{name}")
        version = FunctionVersion(account=scope.account, region=scope.region, name=name, version=LATEST,
                                  config=config, revision_id=new_revision(), last_modified=last_modified())
        try:
            self._store.create_function(version, last_modified(), tags)
        except Conflict as e:
            raise ResourceConflictException(f"Function already exist: {name}") from e
        self._schedule_settle(scope.key(name))
        return version

    def _mutate_latest(self, scope: Scope, name: str, revision_id: str | None,
                       change: Callable[[FunctionVersion], FunctionVersion]) -> FunctionVersion:
        current = self.get_version(scope, FunctionRef(name))
        if revision_id is not None and revision_id != current.revision_id:
            raise PreconditionFailedException(REVISION_MISMATCH)
        if current.last_update_status is UpdateStatus.IN_PROGRESS or current.state is State.PENDING:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for resource: "
                f"{scope.arn(name)}")
        new = change(current)
        try:
            self._store.replace_version(new, expected_revision=current.revision_id)
        except Conflict as e:
            raise PreconditionFailedException(REVISION_MISMATCH) from e
        return new

    def _in_progress(self, current: FunctionVersion, config: FunctionConfig, **fields: Any) -> FunctionVersion:
        return replace(current, config=config, revision_id=new_revision(), last_modified=last_modified(),
                       last_update_status=UpdateStatus.IN_PROGRESS, **fields)

    def update_configuration(self, scope: Scope, name: str, cfg: ConfigInput,
                             revision_id: str | None) -> FunctionVersion:
        self._validate(cfg, creating=False)
        layers = None if cfg.layers is None else tuple(self._layers.resolve(scope, cfg.layers))

        def change(cur: FunctionVersion) -> FunctionVersion:
            c = cur.config
            layered = sum(a.unzipped_size for a in layers) if layers is not None else 0
            if layered + c.code.unzipped_size > limits.UNZIPPED_MAX_BYTES:
                raise InvalidParameterValueException(
                    f"Function code combined with layers exceeds the maximum allowed size of "
                    f"{limits.UNZIPPED_MAX_BYTES} bytes.")
            new_cfg = replace(
                c, runtime=cfg.runtime or c.runtime, role=cfg.role or c.role, handler=cfg.handler or c.handler,
                description=c.description if cfg.description is None else cfg.description,
                timeout_s=cfg.timeout_s or c.timeout_s, memory_mb=cfg.memory_mb or c.memory_mb,
                ephemeral_mb=cfg.ephemeral_mb or c.ephemeral_mb,
                environment=c.environment if cfg.environment is None else cfg.environment,
                architectures=tuple(cfg.architectures) if cfg.architectures else c.architectures,
                layers=c.layers if layers is None else layers,
                tracing_mode=cfg.tracing_mode or c.tracing_mode)
            return self._in_progress(cur, new_cfg)

        new = self._mutate_latest(scope, name, revision_id, change)
        self._schedule_settle(scope.key(name))
        return new

    def update_code(self, scope: Scope, name: str, zip_b64: str | None, s3: bool, architectures: list[str] | None,
                    revision_id: str | None) -> FunctionVersion:
        v = val.Violations()
        val.check_architectures(v, architectures)
        v.raise_if_any()
        current = self.get_version(scope, FunctionRef(name))
        code = self._code_from_zip(zip_b64, s3, sum(a.unzipped_size for a in current.config.layers))

        def change(cur: FunctionVersion) -> FunctionVersion:
            archs = tuple(architectures) if architectures else cur.config.architectures
            return self._in_progress(cur, replace(cur.config, code=code, architectures=archs),
                                     code_revision=cur.code_revision + 1)

        new = self._mutate_latest(scope, name, revision_id, change)
        self._schedule_settle(scope.key(name))
        return new

    def delete(self, scope: Scope, name: str, qualifier: str | None) -> None:
        key = scope.key(name)
        if qualifier == LATEST:
            raise InvalidParameterValueException("$LATEST version cannot be deleted without deleting the function.")
        if qualifier is None:
            if not self._store.delete_function(key):
                raise ResourceNotFoundException(f"Function not found: {scope.arn(name)}")
            return
        self.tags(scope, name)  # the function must exist; a missing version is not an error
        self._store.delete_version(key, qualifier)

    def set_tags(self, scope: Scope, name: str, tags: dict[str, str]) -> None:
        """Replace the tag set; a tag change is a change, so $LATEST gets a new RevisionId."""
        if len(tags) > limits.TAGS_MAX:
            raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")
        key = scope.key(name)
        self._store.set_tags(key, tags)
        latest = self.get_version(scope, FunctionRef(name))
        self._store.replace_version(replace(latest, revision_id=new_revision()), expected_revision=None)

    # -- lifecycle ---------------------------------------------------------------------
    def _schedule_settle(self, key: FunctionKey) -> None:
        """Pending -> Active and InProgress -> Successful happen just after the response, as on AWS."""
        try:
            asyncio.get_running_loop().call_soon(self.settle, key)
        except RuntimeError:
            self.settle(key)

    def settle(self, key: FunctionKey) -> None:
        current = self._store.get_version(key, LATEST)
        if current is None:
            return
        new = current
        if current.state is State.PENDING:
            new = new.with_state(State.ACTIVE)
        if current.last_update_status is UpdateStatus.IN_PROGRESS or current.last_update_status is None:
            new = replace(new, last_update_status=UpdateStatus.SUCCESSFUL)
        if new is not current:
            try:
                self._store.replace_version(new, expected_revision=current.revision_id)
            except Conflict:
                self._schedule_settle(key)   # changed meanwhile: settle the newer row
