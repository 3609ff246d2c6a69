"""PublishVersion, ListVersionsByFunction and the alias operations."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from lamina.api import wire
from lamina.api.call import Call, empty_reply, json_reply
from lamina.api.operations.functions import page


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    CodeSha256: str | None = None
    Description: str | None = None
    RevisionId: str | None = None


class RoutingIn(BaseModel):
    AdditionalVersionWeights: dict[str, float] | None = None


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Name: str | None = None
    FunctionVersion: str | None = None
    Description: str | None = None
    RoutingConfig: RoutingIn | None = None
    RevisionId: str | None = None

    def weights(self) -> dict[str, float] | None:
        return None if self.RoutingConfig is None else (self.RoutingConfig.AdditionalVersionWeights or {})


def alias_shape(call: Call, fn: str, doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"AliasArn": call.scope.arn(fn, doc["name"]), "Name": doc["name"],
                           "FunctionVersion": doc["function_version"], "Description": doc["description"],
                           "RevisionId": doc["revision_id"]}
    if doc.get("routing"):
        out["RoutingConfig"] = {"AdditionalVersionWeights": doc["routing"]}
    return out


async def publish_version(call: Call) -> Response:
    ref, _ = call.function_ref()
    req = call.json(PublishIn)
    v = call.services.versions.publish(call.scope, ref.name, req.CodeSha256, req.RevisionId, req.Description)
    return json_reply(wire.function_configuration(v, call.scope.arn(v.name, v.version)), 201)


async def list_versions(call: Call) -> Response:
    ref, _ = call.function_ref()
    items = [wire.function_configuration(v, call.scope.arn(v.name, v.version))
             for v in call.services.versions.list(call.scope, ref.name)]
    return json_reply(page(call, items, "Versions"))


async def create_alias(call: Call) -> Response:
    ref, _ = call.function_ref()
    req = call.json(AliasIn)
    doc = call.services.aliases.create(call.scope, ref.name, req.Name or "", req.FunctionVersion or "",
                                       req.Description or "", req.weights())
    return json_reply(alias_shape(call, ref.name, doc), 201)


async def get_alias(call: Call) -> Response:
    ref, _ = call.function_ref()
    doc = call.services.aliases.get(call.scope, ref.name, call.path["Name"])
    return json_reply(alias_shape(call, ref.name, doc))


async def update_alias(call: Call) -> Response:
    ref, _ = call.function_ref()
    req = call.json(AliasIn)
    doc = call.services.aliases.update(call.scope, ref.name, call.path["Name"], req.FunctionVersion,
                                       req.Description, req.weights(), req.RevisionId)
    return json_reply(alias_shape(call, ref.name, doc))


async def delete_alias(call: Call) -> Response:
    ref, _ = call.function_ref()
    call.services.aliases.delete(call.scope, ref.name, call.path["Name"])
    return empty_reply(204)


async def list_aliases(call: Call) -> Response:
    ref, _ = call.function_ref()
    docs = call.services.aliases.list(call.scope, ref.name, call.query("FunctionVersion"))
    return json_reply(page(call, [alias_shape(call, ref.name, d) for d in docs], "Aliases"))
