"""The Runtime API contract on one page: paths, headers, status codes, error bodies."""
from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lamina import limits
from lamina.runtime_api.session import RuntimeSession, SessionClosed, UnknownRequest
from lamina.runtime_api.states import TransitionRefused

PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"


def _json(status: int, body: dict[str, str]) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _accepted() -> Response:
    return _json(202, {"status": "OK"})


def _refused(err: TransitionRefused) -> Response:
    return _json(403, {"errorMessage": str(err), "errorType": "InvalidStateTransition"})


def _unknown(request_id: str) -> Response:
    return _json(400, {"errorMessage": f"Invalid request ID: {request_id}", "errorType": "InvalidRequestID"})


def runtime_app(session: RuntimeSession) -> Starlette:
    async def next_invocation(request: Request) -> Response:
        try:
            inv = await session.next()
        except TransitionRefused as err:
            return _refused(err)
        except SessionClosed:
            return _json(410, {"errorMessage": "The environment is shutting down", "errorType": "EnvironmentGone"})
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.invoked_function_arn,
        }
        optional = {"Lambda-Runtime-Trace-Id": inv.trace_id, "Lambda-Runtime-Client-Context": inv.client_context,
                    "Lambda-Runtime-Cognito-Identity": inv.cognito_identity,
                    "Lambda-Runtime-Aws-Tenant-Id": inv.tenant_id}
        headers.update({k: v for k, v in optional.items() if v})
        return Response(inv.payload, status_code=200, media_type="application/json", headers=headers)

    async def response(request: Request) -> Response:
        request_id = request.path_params["request_id"]
        body = await request.body()
        if len(body) > limits.SYNC_RESPONSE_MAX_BYTES:
            session.fail(request_id, json.dumps({
                "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                f"({limits.SYNC_RESPONSE_MAX_BYTES} bytes).",
                "errorType": "Function.ResponseSizeTooLarge"}).encode(), "Function.ResponseSizeTooLarge")
            return _json(413, {"errorMessage": f"Exceeded maximum allowed payload size "
                                               f"({limits.SYNC_RESPONSE_MAX_BYTES} bytes).",
                               "errorType": "RequestEntityTooLarge"})
        try:
            session.respond(request_id, body)
        except TransitionRefused as err:
            return _refused(err)
        except UnknownRequest:
            return _unknown(request_id)
        return _accepted()

    async def error(request: Request) -> Response:
        request_id = request.path_params["request_id"]
        body = await request.body()
        try:
            session.fail(request_id, body, request.headers.get(ERROR_TYPE_HEADER) or "Unhandled")
        except TransitionRefused as err:
            return _refused(err)
        except UnknownRequest:
            return _unknown(request_id)
        return _accepted()

    async def init_error(request: Request) -> Response:
        body = await request.body()
        try:
            session.fail_init(body, request.headers.get(ERROR_TYPE_HEADER) or "Runtime.Unknown")
        except TransitionRefused as err:
            return _refused(err)
        return _accepted()

    return Starlette(routes=[
        Route(f"{PREFIX}/invocation/next", next_invocation, methods=["GET"]),
        Route(f"{PREFIX}/invocation/{{request_id}}/response", response, methods=["POST"]),
        Route(f"{PREFIX}/invocation/{{request_id}}/error", error, methods=["POST"]),
        Route(f"{PREFIX}/init/error", init_error, methods=["POST"]),
    ])
