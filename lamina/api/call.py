"""One API call as handlers see it: who, where, path parameters, query, body; and their replies."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, TypeVar
from urllib.parse import parse_qs, unquote

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError
from starlette.responses import Response

from lamina.arn import FunctionRef, parse_function_ref
from lamina.control import validation as val
from lamina.control.scope import Scope
from lamina.errors import InvalidParameterValueException, ValidationException

M = TypeVar("M", bound=BaseModel)


@dataclass
class Call:
    services: Any                   # lamina.app.Services
    scope: Scope
    request_id: str
    path: Mapping[str, str]
    raw_query: str
    headers: Mapping[str, str]
    body: bytes

    def query(self, name: str) -> str | None:
        values = parse_qs(self.raw_query, keep_blank_values=True).get(name)
        return values[0] if values else None

    def query_int(self, name: str) -> int | None:
        value = self.query(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError as e:
            raise ValidationException(f"1 validation error detected: Value '{value}' at '{name[0].lower()}"
                                      f"{name[1:]}' failed to satisfy constraint: Member must be a number") from e

    def json(self, model: type[M]) -> M:
        try:
            data = json.loads(self.body or b"{}")
            return model.model_validate(data)
        except json.JSONDecodeError as e:
            raise ValidationException(f"Could not parse request body into json: {e}") from e
        except PydanticError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ValidationException(f"1 validation error detected: Value at '{field}' failed to satisfy "
                                      f"constraint: {first['msg']}") from e

    def function_ref(self, qualifier_param: str | None = None) -> tuple[FunctionRef, str | None]:
        """The function in the path and its qualifier (from the name/ARN or the Qualifier query)."""
        raw = unquote(self.path["FunctionName"])
        val.check_function_name_param(raw)
        ref = parse_function_ref(raw)
        if ref is None:
            raise ValidationException(f"1 validation error detected: Value '{raw}' at 'functionName' failed to "
                                      f"satisfy constraint: Member must satisfy regular expression pattern: "
                                      f"{val.FUNCTION_NAME_PATTERN}")
        query_q = self.query(qualifier_param) if qualifier_param else None
        if ref.qualifier and query_q and ref.qualifier != query_q:
            raise InvalidParameterValueException(
                "The derived qualifier from the function name does not match the specified qualifier.")
        if ref.account and ref.account != self.scope.account:
            raise InvalidParameterValueException("Cross-account function references are not supported.")
        return ref, ref.qualifier or query_q


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def empty_reply(status: int = 204) -> Response:
    return Response(b"", status_code=status)


Handler = Callable[[Call], Awaitable[Response]]
