"""Layers: published, numbered zip archives that functions mount read-only at /opt, in order."""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from lamina.arn import layer_arn, parse_layer_version_arn
from lamina.control import code as code_ops
from lamina.control.clock import last_modified
from lamina.control.scope import Scope
from lamina.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lamina.model.function import LayerAttachment
from lamina.store.base import Store
from lamina.store.blobs import BlobStore

LAYER_NAME_PATTERN = r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+"


class LayerService:
    def __init__(self, store: Store, blobs: BlobStore) -> None:
        self._store = store
        self._blobs = blobs

    @staticmethod
    def _name(value: str) -> str:
        if not re.fullmatch(LAYER_NAME_PATTERN, value) or len(value) > 140:
            raise ValidationException(f"1 validation error detected: Value '{value}' at 'layerName' failed to "
                                      f"satisfy constraint: Member must satisfy regular expression pattern: "
                                      f"{LAYER_NAME_PATTERN}")
        return value.rsplit(":", 1)[-1] if value.startswith("arn:") else value

    def publish(self, scope: Scope, name: str, zip_b64: str | None, description: str,
                runtimes: list[str], architectures: list[str], license_info: str | None) -> dict[str, Any]:
        name = self._name(name)
        if zip_b64 is None:
            raise InvalidParameterValueException("Please provide a source for layer content.")
        code = code_ops.ingest(self._blobs, code_ops.decode_zip_field(zip_b64))

        def make(version: int) -> dict[str, Any]:
            return {"name": name, "version": version, "description": description, "created": last_modified(),
                    "runtimes": runtimes, "architectures": architectures, "license": license_info,
                    "code": vars(code), "policy": {"revision_id": str(uuid.uuid4()), "statements": []}}

        return self._store.publish_layer_version(scope.account, scope.region, name, make)

    def get(self, scope: Scope, name: str, version: int) -> dict[str, Any]:
        name = self._name(name)
        doc = self._store.get_layer_version(scope.account, scope.region, name, version)
        if doc is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return doc

    def get_by_arn(self, scope: Scope, arn: str) -> dict[str, Any]:
        ref = parse_layer_version_arn(arn)
        if ref is None:
            raise ValidationException(f"1 validation error detected: Value '{arn}' at 'arn' failed to satisfy "
                                      "constraint: Member must satisfy regular expression pattern: "
                                      "(arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:"
                                      "\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)")
        return self.get(Scope(ref.account, ref.region), ref.name, ref.version)

    def list_versions(self, scope: Scope, name: str) -> list[dict[str, Any]]:
        return self._store.list_layer_versions(scope.account, scope.region, self._name(name))

    def list_layers(self, scope: Scope) -> list[dict[str, Any]]:
        out = []
        for name in self._store.list_layer_names(scope.account, scope.region):
            versions = self._store.list_layer_versions(scope.account, scope.region, name)
            if versions:
                out.append(versions[0])
        return out

    def delete(self, scope: Scope, name: str, version: int) -> None:
        self._store.delete_layer_version(scope.account, scope.region, self._name(name), version)

    def resolve(self, scope: Scope, arns: list[str]) -> list[LayerAttachment]:
        """Layer ARNs in order -> attachments; AWS's errors for unknown, duplicate or foreign layers."""
        seen: set[str] = set()
        out = []
        for arn in arns:
            ref = parse_layer_version_arn(arn)
            if ref is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            if ref.version < 1:
                raise InvalidParameterValueException("Layer Version Cannot be less than 1")
            if ref.region != scope.region:
                raise InvalidParameterValueException(
                    f"Layers are not in the same region as the function. Layers are expected to be in region "
                    f"{scope.region}.")
            base = layer_arn(ref.region, ref.account, ref.name)
            if base in seen:
                raise InvalidParameterValueException(
                    "Two different versions of the same layer are not allowed to be referenced in the same "
                    "function. Please specify one version of the layer.")
            seen.add(base)
            doc = self._store.get_layer_version(ref.account, ref.region, ref.name, ref.version)
            if doc is None or (ref.account != scope.account and not self._shared_with(doc, scope.account)):
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            code = doc["code"]
            out.append(LayerAttachment(arn, code["size"], code["blob_hash"], code["unzipped_size"]))
        return out

    @staticmethod
    def _shared_with(doc: dict[str, Any], account: str) -> bool:
        return any(s["principal"] in ("*", account) for s in doc["policy"]["statements"])

    # -- layer version permissions -----------------------------------------------------
    def add_permission(self, scope: Scope, name: str, version: int, sid: str, action: str, principal: str,
                       org_id: str | None, revision_id: str | None) -> tuple[dict[str, Any], str]:
        doc = self.get(scope, name, version)
        if action != "lambda:GetLayerVersion":
            raise ValidationException(f"1 validation error detected: Value '{action}' at 'action' failed to satisfy "
                                      "constraint: Member must satisfy regular expression pattern: "
                                      "lambda:GetLayerVersion")
        policy = doc["policy"]
        if revision_id is not None and revision_id != policy["revision_id"]:
            raise PreconditionFailedException("The Revision Id provided does not match the latest Revision Id. "
                                              "Call the GetLayerPolicy API to retrieve the latest Revision Id")
        if any(s["sid"] == sid for s in policy["statements"]):
            raise ResourceConflictException(f"The statement id ({sid}) provided already exists. Please provide a "
                                            "new statement id, or remove the existing statement.")
        statement = {"sid": sid, "action": action, "principal": principal, "org_id": org_id}
        policy["statements"].append(statement)
        policy["revision_id"] = str(uuid.uuid4())
        self._store.replace_layer_version(scope.account, scope.region, doc["name"], version, doc)
        return self._statement_json(scope, doc, statement), policy["revision_id"]

    def _statement_json(self, scope: Scope, doc: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
        principal: Any = "*" if s["principal"] == "*" else {"AWS": f"arn:aws:iam::{s['principal']}:root"}
        out: dict[str, Any] = {"Sid": s["sid"], "Effect": "Allow", "Principal": principal, "Action": s["action"],
                               "Resource": layer_arn(scope.region, scope.account, doc["name"], doc["version"])}
        if s.get("org_id"):
            out["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": s["org_id"]}}
        return out

    def get_policy(self, scope: Scope, name: str, version: int) -> tuple[str, str]:
        doc = self.get(scope, name, version)
        policy = doc["policy"]
        if not policy["statements"]:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        body = {"Version": "2012-10-17", "Id": "default",
                "Statement": [self._statement_json(scope, doc, s) for s in policy["statements"]]}
        return json.dumps(body), policy["revision_id"]

    def remove_permission(self, scope: Scope, name: str, version: int, sid: str, revision_id: str | None) -> None:
        doc = self.get(scope, name, version)
        policy = doc["policy"]
        if revision_id is not None and revision_id != policy["revision_id"]:
            raise PreconditionFailedException("The Revision Id provided does not match the latest Revision Id. "
                                              "Call the GetLayerPolicy API to retrieve the latest Revision Id")
        kept = [s for s in policy["statements"] if s["sid"] != sid]
        if len(kept) == len(policy["statements"]):
            raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
        policy["statements"] = kept
        policy["revision_id"] = str(uuid.uuid4())
        self._store.replace_layer_version(scope.account, scope.region, doc["name"], version, doc)
