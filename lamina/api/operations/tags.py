"""TagResource, UntagResource, ListTags: tags live on the unqualified function only."""
from __future__ import annotations

from urllib.parse import parse_qs, unquote

from pydantic import BaseModel
from starlette.responses import Response

from lamina.api.call import Call, empty_reply, json_reply
from lamina.arn import parse_function_ref
from lamina.errors import InvalidParameterValueException, ValidationException


class TagsIn(BaseModel):
    Tags: dict[str, str]


def _function_name(call: Call) -> str:
    arn = unquote(call.path["Resource"])
    ref = parse_function_ref(arn)
    if ref is None or not arn.startswith("arn:"):
        raise ValidationException(f"1 validation error detected: Value '{arn}' at 'resource' failed to satisfy "
                                  "constraint: Member must satisfy regular expression pattern: "
                                  "arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:"
                                  "(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-_]+)|"
                                  "code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-f]{8}-[0-9a-f]{4}-"
                                  "[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
    if ref.qualifier:
        raise InvalidParameterValueException(
            "Tags on function aliases and versions are not supported. Please specify a function ARN.")
    return ref.name


async def tag_resource(call: Call) -> Response:
    name = _function_name(call)
    fns = call.services.functions
    tags = {**fns.tags(call.scope, name), **call.json(TagsIn).Tags}
    fns.set_tags(call.scope, name, tags)
    return empty_reply(204)


async def untag_resource(call: Call) -> Response:
    name = _function_name(call)
    fns = call.services.functions
    remove = set(parse_qs(call.raw_query).get("tagKeys", []))
    tags = {k: v for k, v in fns.tags(call.scope, name).items() if k not in remove}
    fns.set_tags(call.scope, name, tags)
    return empty_reply(204)


async def list_tags(call: Call) -> Response:
    name = _function_name(call)
    return json_reply({"Tags": call.services.functions.tags(call.scope, name)})
