"""Translation of platform errors into AWS's error responses: the single place it happens."""
from __future__ import annotations

import json
import logging

from starlette.responses import Response

from lamina.errors import ServiceError, ServiceException

log = logging.getLogger("lamina.api")


def error_response(err: ServiceError, request_id: str) -> Response:
    return Response(json.dumps(err.body()), status_code=err.status, media_type="application/json",
                    headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": err.code})


def unexpected_response(exc: BaseException, request_id: str) -> Response:
    log.error("unhandled error", exc_info=exc)
    return error_response(ServiceException(f"An internal error occurred: {type(exc).__name__}"), request_id)
