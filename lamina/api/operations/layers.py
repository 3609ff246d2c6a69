"""Layer versions and their permissions."""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from lamina.api.call import Call, empty_reply, json_reply
from lamina.api.operations.functions import page
from lamina.arn import layer_arn
from lamina.control.scope import Scope
from lamina.errors import InvalidParameterValueException


class ContentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ZipFile: str | None = None
    S3Bucket: str | None = None
    S3Key: str | None = None


class PublishLayerIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Description: str = ""
    Content: ContentIn
    CompatibleRuntimes: list[str] = []
    CompatibleArchitectures: list[str] = []
    LicenseInfo: str | None = None


class PermissionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    StatementId: str
    Action: str
    Principal: str
    OrganizationId: str | None = None
    RevisionId: str | None = None


def _summary(scope: Scope, doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"LayerVersionArn": layer_arn(scope.region, scope.account, doc["name"], doc["version"]),
                           "Version": doc["version"], "Description": doc["description"],
                           "CreatedDate": doc["created"], "CompatibleRuntimes": doc["runtimes"],
                           "CompatibleArchitectures": doc["architectures"]}
    if doc.get("license"):
        out["LicenseInfo"] = doc["license"]
    return out


def _full(call: Call, doc: dict[str, Any]) -> dict[str, Any]:
    code = doc["code"]
    return {**_summary(call.scope, doc), "LayerArn": layer_arn(call.scope.region, call.scope.account, doc["name"]),
            "Content": {"Location": f"{call.services.public_url}/_lamina/v1/code/{code['blob_hash']}.zip",
                        "CodeSha256": code["sha256_b64"], "CodeSize": code["size"]}}


def _version(call: Call) -> int:
    value = call.path["VersionNumber"]
    try:
        return int(value)
    except ValueError as e:
        raise InvalidParameterValueException(f"Invalid layer version number: {value}") from e


async def publish_layer_version(call: Call) -> Response:
    req = call.json(PublishLayerIn)
    if req.Content.S3Bucket or req.Content.S3Key:
        raise InvalidParameterValueException("S3Bucket/S3Key layer content is not supported yet: Lamina has no "
                                             "object store. Send the archive as ZipFile.")
    doc = call.services.layers.publish(call.scope, call.path["LayerName"], req.Content.ZipFile, req.Description,
                                       req.CompatibleRuntimes, req.CompatibleArchitectures, req.LicenseInfo)
    return json_reply(_full(call, doc), 201)


async def list_layers(call: Call) -> Response:
    runtime = call.query("CompatibleRuntime")
    items = []
    for doc in call.services.layers.list_layers(call.scope):
        if runtime and runtime not in doc["runtimes"]:
            continue
        items.append({"LayerName": doc["name"], "LayerArn": layer_arn(call.scope.region, call.scope.account,
                                                                     doc["name"]),
                      "LatestMatchingVersion": _summary(call.scope, doc)})
    return json_reply(page(call, items, "Layers"))


async def list_layer_versions(call: Call) -> Response:
    runtime = call.query("CompatibleRuntime")
    docs = call.services.layers.list_versions(call.scope, call.path["LayerName"])
    items = [_summary(call.scope, d) for d in docs if not runtime or runtime in d["runtimes"]]
    return json_reply(page(call, items, "LayerVersions"))


async def get_layer_version(call: Call) -> Response:
    return json_reply(_full(call, call.services.layers.get(call.scope, call.path["LayerName"], _version(call))))


async def get_layer_version_by_arn(call: Call) -> Response:
    return json_reply(_full(call, call.services.layers.get_by_arn(call.scope, call.query("Arn") or "")))


async def delete_layer_version(call: Call) -> Response:
    call.services.layers.delete(call.scope, call.path["LayerName"], _version(call))
    return empty_reply(204)


async def add_layer_version_permission(call: Call) -> Response:
    req = call.json(PermissionIn)
    statement, revision = call.services.layers.add_permission(
        call.scope, call.path["LayerName"], _version(call), req.StatementId, req.Action, req.Principal,
        req.OrganizationId, call.query("RevisionId") or req.RevisionId)
    return json_reply({"Statement": json.dumps(statement), "RevisionId": revision}, 201)


async def get_layer_version_policy(call: Call) -> Response:
    policy, revision = call.services.layers.get_policy(call.scope, call.path["LayerName"], _version(call))
    return json_reply({"Policy": policy, "RevisionId": revision})


async def remove_layer_version_permission(call: Call) -> Response:
    call.services.layers.remove_permission(call.scope, call.path["LayerName"], _version(call),
                                           call.path["StatementId"], call.query("RevisionId"))
    return empty_reply(204)
