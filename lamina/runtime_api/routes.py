"""The Runtime API contract on one page: paths, headers, status codes, error bodies.

A plain ASGI callable rather than a routed framework app: three calls per invocation pass through
here, so it matches paths by hand and does nothing else.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lamina import limits
from lamina.runtime_api.session import RuntimeSession, SessionClosed, UnknownRequest
from lamina.runtime_api.states import TransitionRefused

PREFIX = "/2018-06-01/runtime"
NEXT = f"{PREFIX}/invocation/next"
INVOCATION = f"{PREFIX}/invocation/"
INIT_ERROR = f"{PREFIX}/init/error"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"
TOO_LARGE = f"Exceeded maximum allowed payload size ({limits.SYNC_RESPONSE_MAX_BYTES} bytes)."


def _json(status: int, body: dict[str, str]) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


_ACCEPTED = json.dumps({"status": "OK"}).encode()


def _accepted() -> Response:
    return Response(_ACCEPTED, status_code=202, media_type="application/json")


def _refused(err: TransitionRefused) -> Response:
    return _json(403, {"errorMessage": str(err), "errorType": "InvalidStateTransition"})


def _unknown(request_id: str) -> Response:
    return _json(400, {"errorMessage": f"Invalid request ID: {request_id}", "errorType": "InvalidRequestID"})


Authorize = Callable[[tuple[str, int]], bool]   # (peer host, peer port) -> is it this environment's code?
TRUST_S = 1.0                                   # how long a checked connection stays trusted


class RuntimeApp:
    def __init__(self, session: RuntimeSession, authorize: Authorize | None = None) -> None:
        self._session = session
        self._authorize = authorize
        self._trusted: dict[tuple[str, int], float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not self._allowed(scope.get("client")):
            response = _json(403, {"errorMessage": "This Runtime API belongs to another execution environment",
                                   "errorType": "AccessDenied"})
        else:
            response = await self._route(Request(scope, receive))
        await response(scope, receive, send)

    def _allowed(self, client: tuple[str, int] | None) -> bool:
        """Only the environment's own processes may call: every sandbox can reach every loopback port."""
        if self._authorize is None:
            return True
        if client is None:
            return False
        peer = (client[0], client[1])
        now = time.monotonic()
        if self._trusted.get(peer, 0.0) > now:
            return True
        if not self._authorize(peer):
            return False
        self._trusted[peer] = now + TRUST_S
        return True

    async def _route(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        if path == NEXT and method == "GET":
            return await self._next()
        if path == INIT_ERROR and method == "POST":
            return await self._init_error(request)
        if path.startswith(INVOCATION) and method == "POST":
            request_id, _, action = path[len(INVOCATION):].partition("/")
            if action == "response":
                return await self._response(request_id, request)
            if action == "error":
                return await self._error(request_id, request)
        return _json(404, {"errorMessage": f"Unknown Runtime API call {method} {path}", "errorType": "NotFound"})

    async def _next(self) -> Response:
        try:
            inv = await self._session.next()
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

    async def _response(self, request_id: str, request: Request) -> Response:
        body = await request.body()
        try:
            if len(body) > limits.SYNC_RESPONSE_MAX_BYTES:
                self._session.fail(request_id, json.dumps({
                    "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                    f"({limits.SYNC_RESPONSE_MAX_BYTES} bytes).",
                    "errorType": "Function.ResponseSizeTooLarge"}).encode(), "Function.ResponseSizeTooLarge")
                return _json(413, {"errorMessage": TOO_LARGE, "errorType": "RequestEntityTooLarge"})
            self._session.respond(request_id, body)
        except TransitionRefused as err:
            return _refused(err)
        except UnknownRequest:
            return _unknown(request_id)
        return _accepted()

    async def _error(self, request_id: str, request: Request) -> Response:
        body = await request.body()
        try:
            self._session.fail(request_id, body, request.headers.get(ERROR_TYPE_HEADER) or "Unhandled")
        except TransitionRefused as err:
            return _refused(err)
        except UnknownRequest:
            return _unknown(request_id)
        return _accepted()

    async def _init_error(self, request: Request) -> Response:
        body = await request.body()
        try:
            self._session.fail_init(body, request.headers.get(ERROR_TYPE_HEADER) or "Runtime.Unknown")
        except TransitionRefused as err:
            return _refused(err)
        return _accepted()
