"""CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, Update*, DeleteFunction."""
from __future__ import annotations

from typing import Any

from starlette.responses import Response

from lamina.api import wire
from lamina.api.call import Call, empty_reply, json_reply
from lamina.errors import ValidationException
from lamina.model.function import FunctionVersion


def _config(call: Call, v: FunctionVersion, qualifier: str | None) -> dict[str, Any]:
    return wire.function_configuration(v, call.scope.arn(v.name, qualifier))


def _resolve(call: Call) -> tuple[FunctionVersion, str | None]:
    ref, qualifier = call.function_ref("Qualifier")
    version = call.services.versions.resolve(call.scope, ref, qualifier)
    return version, qualifier


async def create_function(call: Call) -> Response:
    req = call.json(wire.CreateFunctionIn)
    fns = call.services.functions
    v = fns.create(call.scope, req.FunctionName, req.to_input(), req.Code.ZipFile,
                   bool(req.Code.S3Bucket or req.Code.S3Key or req.Code.ImageUri), req.Tags or {})
    if req.Publish:
        published = call.services.versions.publish(call.scope, v.name, None, None)
        return json_reply({**_config(call, v, None), "Version": published.version}, 201)
    return json_reply(_config(call, v, None), 201)


async def get_function(call: Call) -> Response:
    v, qualifier = _resolve(call)
    body: dict[str, Any] = {
        "Configuration": _config(call, v, qualifier),
        "Code": {"RepositoryType": "S3",
                 "Location": f"{call.services.public_url}/_lamina/v1/code/{v.config.code.blob_hash}.zip"},
    }
    tags = call.services.functions.tags(call.scope, v.name)
    if tags and qualifier is None:
        body["Tags"] = tags
    return json_reply(body)


async def get_function_configuration(call: Call) -> Response:
    v, qualifier = _resolve(call)
    return json_reply(_config(call, v, qualifier))


def page(call: Call, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    max_items = call.query_int("MaxItems") or 50
    if not 1 <= max_items <= 10000:
        raise ValidationException(f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to "
                                  "satisfy constraint: Member must have value less than or equal to 10000")
    start = int(call.query("Marker") or 0)
    out: dict[str, Any] = {key: items[start:start + max_items]}
    if start + max_items < len(items):
        out["NextMarker"] = str(start + max_items)
    return out


async def list_functions(call: Call) -> Response:
    fns = call.services.functions
    if call.query("FunctionVersion") == "ALL":
        items = [_config(call, v, v.version) for v in fns.list_all_versions(call.scope)]
    else:
        items = [_config(call, v, None) for v in fns.list_latest(call.scope)]
    return json_reply(page(call, items, "Functions"))


async def update_function_configuration(call: Call) -> Response:
    ref, _ = call.function_ref()
    req = call.json(wire.ConfigurationIn)
    v = call.services.functions.update_configuration(call.scope, ref.name, req.to_input(), req.RevisionId)
    return json_reply(_config(call, v, None))


async def update_function_code(call: Call) -> Response:
    ref, _ = call.function_ref()
    req = call.json(wire.UpdateCodeIn)
    v = call.services.functions.update_code(call.scope, ref.name, req.ZipFile,
                                            bool(req.S3Bucket or req.S3Key or req.ImageUri),
                                            req.Architectures, req.RevisionId)
    if req.Publish:
        published = call.services.versions.publish(call.scope, v.name, None, None)
        return json_reply(_config(call, published, published.version))
    return json_reply(_config(call, v, None))


async def delete_function(call: Call) -> Response:
    ref, qualifier = call.function_ref("Qualifier")
    call.services.functions.delete(call.scope, ref.name, qualifier)
    await call.services.invoker.forget(call.scope.key(ref.name), qualifier)
    return empty_reply(204)


