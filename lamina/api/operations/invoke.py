"""Invoke: RequestResponse (200), DryRun (204); Event answers once the event is accepted."""
from __future__ import annotations

import base64
import binascii
import json
import secrets
import time

from starlette.responses import Response

from lamina.api.call import Call, empty_reply
from lamina.errors import InvalidParameterValueException, ValidationException
from lamina.invoke.router import InvokeRequest
from lamina.telemetry.invoke_log import tail

_TYPES = ("RequestResponse", "Event", "DryRun")


def _trace_id(header: str | None) -> str:
    """The caller's X-Ray header, or a fresh root as Lambda starts one for every invocation."""
    if header:
        return header
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=0"


def _client_context(value: str | None) -> str | None:
    """X-Amz-Client-Context is base64 JSON; the runtime receives the decoded JSON."""
    if not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
        json.loads(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise InvalidParameterValueException("Client context must be a valid Base64-encoded JSON object.") from e
    return decoded


async def invoke(call: Call) -> Response:
    ref, qualifier = call.function_ref("Qualifier")
    kind = call.headers.get("x-amz-invocation-type", "RequestResponse")
    if kind not in _TYPES:
        raise ValidationException(f"1 validation error detected: Value '{kind}' at 'invocationType' failed to "
                                  "satisfy constraint: Member must satisfy enum value set: [Event, "
                                  "RequestResponse, DryRun]")
    log_type = call.headers.get("x-amz-log-type", "None")
    req = InvokeRequest(call.scope, ref, qualifier, call.body, call.request_id,
                        _client_context(call.headers.get("x-amz-client-context")),
                        call.headers.get("x-amz-tenant-id"), _trace_id(call.headers.get("x-amzn-trace-id")))
    invoker = call.services.invoker
    if kind == "DryRun":
        invoker.resolve(req)
        return empty_reply(204)
    if kind == "Event":
        await call.services.events.accept(req)
        return empty_reply(202)
    result = await invoker.invoke(req)
    headers = {"X-Amz-Executed-Version": result.executed_version}
    if result.function_error:
        headers["X-Amz-Function-Error"] = result.function_error
    if log_type == "Tail":
        headers["X-Amz-Log-Result"] = tail(result.log)
    return Response(result.payload, status_code=200, media_type="application/json", headers=headers)
