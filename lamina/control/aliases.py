"""Aliases: named pointers to a version, optionally splitting traffic with a second one by weight."""
from __future__ import annotations

import re
import uuid
from typing import Any

from lamina.arn import FunctionRef
from lamina.control.functions import REVISION_MISMATCH, FunctionService
from lamina.control.scope import Scope
from lamina.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lamina.model.function import LATEST
from lamina.store.base import Conflict, Store

ALIAS_PATTERN = r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
VERSION_PATTERN = r"(\$LATEST|[0-9]+)"


class AliasService:
    def __init__(self, store: Store, functions: FunctionService) -> None:
        self._store = store
        self._functions = functions

    @staticmethod
    def _check_name(name: str) -> None:
        if len(name) > 128 or not re.fullmatch(ALIAS_PATTERN, name):
            raise ValidationException(f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
                                      f"constraint: Member must satisfy regular expression pattern: {ALIAS_PATTERN}")

    def _check_version_exists(self, scope: Scope, fn: str, version: str) -> None:
        if not re.fullmatch(VERSION_PATTERN, version):
            raise ValidationException(f"1 validation error detected: Value '{version}' at 'functionVersion' failed "
                                      f"to satisfy constraint: Member must satisfy regular expression pattern: "
                                      f"{VERSION_PATTERN}")
        self._functions.get_version(scope, FunctionRef(fn), version)

    def _check_routing(self, scope: Scope, fn: str, primary: str, weights: dict[str, float] | None) -> None:
        if not weights:
            return
        for version, weight in weights.items():
            if not re.fullmatch(r"[0-9]+", version) or not 0.0 <= weight <= 1.0:
                raise ValidationException(
                    f"1 validation error detected: Value '{{{version}={weight}}}' at "
                    "'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy "
                    "constraint: [Member must have value less than or equal to 1.0, Member must have value greater "
                    "than or equal to 0.0, Member must not be null]")
        if len(weights) > 1:
            raise InvalidParameterValueException("Number of items in AdditionalVersionWeights cannot be greater than 1")
        if primary == LATEST:
            raise InvalidParameterValueException(
                "$LATEST is not supported for an alias pointing to more than 1 version")
        for version in weights:
            if version == primary:
                raise InvalidParameterValueException(
                    f"Invalid function version {version}. Function version {version} is already included in "
                    "routing configuration.")
            self._check_version_exists(scope, fn, version)

    def create(self, scope: Scope, fn: str, name: str, version: str, description: str,
               weights: dict[str, float] | None) -> dict[str, Any]:
        self._check_name(name)
        self._functions.tags(scope, fn)
        self._check_version_exists(scope, fn, version)
        self._check_routing(scope, fn, version, weights)
        doc = {"name": name, "function_version": version, "description": description,
               "routing": weights or None, "revision_id": str(uuid.uuid4())}
        try:
            self._store.put_alias(scope.key(fn), name, doc, None, create=True)
        except Conflict as e:
            raise ResourceConflictException(f"Alias already exists: {scope.arn(fn, name)}") from e
        return doc

    def get(self, scope: Scope, fn: str, name: str) -> dict[str, Any]:
        self._functions.tags(scope, fn)
        doc = self._store.get_alias(scope.key(fn), name)
        if doc is None:
            raise ResourceNotFoundException(f"Cannot find alias arn: {scope.arn(fn, name)}")
        return doc

    def update(self, scope: Scope, fn: str, name: str, version: str | None, description: str | None,
               weights: dict[str, float] | None, revision_id: str | None) -> dict[str, Any]:
        self._functions.tags(scope, fn)
        current = self._store.get_alias(scope.key(fn), name)
        if current is None:
            raise ResourceNotFoundException(f"Alias not found: {scope.arn(fn, name)}")
        if revision_id is not None and revision_id != current["revision_id"]:
            raise PreconditionFailedException(REVISION_MISMATCH)
        primary = version or current["function_version"]
        if version is not None:
            self._check_version_exists(scope, fn, version)
        routing = current["routing"] if weights is None else weights
        self._check_routing(scope, fn, primary, routing)
        doc = {**current, "function_version": primary, "routing": routing or None,
               "description": current["description"] if description is None else description,
               "revision_id": str(uuid.uuid4())}
        try:
            self._store.put_alias(scope.key(fn), name, doc, current["revision_id"], create=False)
        except Conflict as e:
            raise PreconditionFailedException(REVISION_MISMATCH) from e
        return doc

    def delete(self, scope: Scope, fn: str, name: str) -> None:
        self._functions.tags(scope, fn)
        self._store.delete_alias(scope.key(fn), name)

    def list(self, scope: Scope, fn: str, version: str | None) -> list[dict[str, Any]]:
        self._functions.tags(scope, fn)
        docs = self._store.list_aliases(scope.key(fn))
        return [d for d in docs if version is None or d["function_version"] == version]
