"""The ASGI app for the AWS API: routing by the operations table, auth, request ids, error shapes."""
from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lamina.api import auth
from lamina.api.call import Call
from lamina.api.errors import error_response, unexpected_response
from lamina.api.routes import OPERATIONS, Operation
from lamina.control.scope import Scope as FnScope
from lamina.errors import RequestEntityTooLargeException, ServiceError, UnknownOperationException
from lamina.telemetry import server_log

log = logging.getLogger("lamina.api")


def _compile(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return re.compile(f"^{pattern}/?$")


class ApiApp:
    """A plain ASGI callable: one regex table lookup, then the operation's handler."""

    def __init__(self, services: Any) -> None:
        self._services = services
        self._routes = [(op, _compile(op.path)) for op in OPERATIONS]

    def _match(self, method: str, path: str, query: str) -> tuple[Operation, dict[str, str]] | None:
        fallback = None
        for op, pattern in self._routes:
            if op.method != method:
                continue
            m = pattern.match(path)
            if not m:
                continue
            if op.query_selector and op.query_selector not in query.split("&"):
                continue
            if op.query_selector:
                return op, m.groupdict()
            fallback = fallback or (op, m.groupdict())
        return fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        rid = str(uuid.uuid4())
        tokens = server_log.begin_request(rid)
        try:
            response = await self._handle(Request(scope, receive), scope, rid)
        finally:
            server_log.end_request(tokens)
        response.headers["x-amzn-RequestId"] = rid
        await response(scope, receive, send)

    async def _handle(self, request: Request, scope: Scope, rid: str) -> Response:
        started = time.perf_counter()
        raw_path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        found = self._match(request.method, raw_path, query)
        op_name = found[0].name if found else "Unknown"
        try:
            if found is None:
                raise UnknownOperationException(f"Unknown operation {request.method} {raw_path}")
            op, params = found
            response = await self._run(op, params, request, raw_path, query, rid)
        except ServiceError as err:
            response = error_response(err, rid)
        except Exception as exc:  # noqa: BLE001 - the edge turns any bug into a 500 in AWS's shape
            response = unexpected_response(exc, rid)
        log.info("request", extra={"fields": {"op": op_name, "status": response.status_code,
                                              "ms": round((time.perf_counter() - started) * 1000, 2),
                                              **server_log.request_fields()}})
        return response

    async def _run(self, op: Operation, params: dict[str, str], request: Request, raw_path: str,
                   query: str, rid: str) -> Response:
        length = int(request.headers.get("content-length") or 0)
        if length > op.max_body:
            raise RequestEntityTooLargeException(
                f"Request must be smaller than {op.max_body} bytes for the {op.label} operation")
        body = await request.body()
        if len(body) > op.max_body:
            raise RequestEntityTooLargeException(
                f"Request must be smaller than {op.max_body} bytes for the {op.label} operation")
        headers = {k.lower(): v for k, v in request.headers.items()}
        scope = FnScope("", self._services.default_region)
        if op.signed:
            caller = auth.verify(auth.SignedRequest(request.method, raw_path, query, headers, body),
                                 self._services.identities.lookup)
            scope = FnScope(caller.account, caller.region or self._services.default_region)
        call = Call(self._services, scope, rid, params, query, headers, body)
        return await op.handler(call)
