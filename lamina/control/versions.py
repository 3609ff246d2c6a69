"""Published versions: immutable copies of $LATEST, and resolving a qualifier to one."""
from __future__ import annotations

import random
from dataclasses import replace

from lamina.arn import FunctionRef
from lamina.control.clock import last_modified
from lamina.control.functions import REVISION_MISMATCH, FunctionService, new_revision
from lamina.control.scope import Scope
from lamina.errors import PreconditionFailedException, ResourceNotFoundException
from lamina.model.function import LATEST, FunctionVersion, State, UpdateStatus
from lamina.store.base import Store


def _is_version_number(qualifier: str) -> bool:
    return qualifier.isdigit()


class VersionService:
    def __init__(self, store: Store, functions: FunctionService, rng: random.Random | None = None) -> None:
        self._store = store
        self._functions = functions
        self._rng = rng or random.Random()

    def resolve(self, scope: Scope, ref: FunctionRef, qualifier: str | None) -> FunctionVersion:
        """A qualifier names `$LATEST`, a version number or an alias (its primary version)."""
        if qualifier is None or qualifier == LATEST or _is_version_number(qualifier):
            return self._functions.get_version(scope, ref, qualifier)
        alias = self._store.get_alias(scope.key(ref.name), qualifier)
        if alias is None:
            raise ResourceNotFoundException(f"Function not found: {scope.arn(ref.name, qualifier)}")
        return self._functions.get_version(scope, ref, alias["function_version"])

    def pick_for_invoke(self, scope: Scope, ref: FunctionRef, qualifier: str | None) -> FunctionVersion:
        """Like resolve, but an alias with routing weights sends each call to one of its versions."""
        if qualifier is None or qualifier == LATEST or _is_version_number(qualifier):
            return self.resolve(scope, ref, qualifier or LATEST)   # AWS names `:$LATEST` when none was given
        alias = self._store.get_alias(scope.key(ref.name), qualifier)
        if alias is None:
            raise ResourceNotFoundException(f"Function not found: {scope.arn(ref.name, qualifier)}")
        chosen = alias["function_version"]
        draw = self._rng.random()
        for version, weight in (alias.get("routing") or {}).items():
            if draw < weight:
                chosen = version
                break
            draw -= weight
        return self._functions.get_version(scope, ref, chosen)

    def list(self, scope: Scope, name: str) -> list[FunctionVersion]:
        self._functions.tags(scope, name)   # 404 when the function is gone
        return self._store.list_versions(scope.key(name))

    def publish(self, scope: Scope, name: str, code_sha256: str | None, revision_id: str | None,
                description: str | None = None) -> FunctionVersion:
        latest = self._functions.get_version(scope, FunctionRef(name))
        if revision_id is not None and revision_id != latest.revision_id:
            raise PreconditionFailedException(REVISION_MISMATCH)
        if code_sha256 is not None and code_sha256 != latest.config.code.sha256_b64:
            raise PreconditionFailedException(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({latest.config.code.sha256_b64}). Please try again with the CodeSHA256 in $LATEST.")
        fingerprint = [latest.code_revision, latest.config.to_doc(), latest.config.environment]
        existing = [v for v in self._store.list_versions(scope.key(name))
                    if v.version != LATEST and v.extra.get("fingerprint") == fingerprint]
        if existing:
            return existing[-1]

        def make(number: str) -> FunctionVersion:
            config = latest.config if description is None else replace(latest.config, description=description)
            return replace(latest, version=number, config=config, revision_id=new_revision(),
                           last_modified=last_modified(), state=State.ACTIVE, state_reason=None,
                           state_reason_code=None, last_update_status=UpdateStatus.SUCCESSFUL,
                           extra={"fingerprint": fingerprint})

        return self._store.publish_version(scope.key(name), make)
