"""Structured server logs: one JSON object a line, the request id on every line."""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_annotations: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar("annotations", default=None)


def begin_request(rid: str) -> tuple[contextvars.Token[str], contextvars.Token[dict[str, object] | None]]:
    return request_id.set(rid), _annotations.set({})


def end_request(tokens: tuple[contextvars.Token[str], contextvars.Token[dict[str, object] | None]]) -> None:
    request_id.reset(tokens[0])
    _annotations.reset(tokens[1])


def annotate(**fields: object) -> None:
    """Add fields to this request's one log line (the invoke path reports here, not in lines of its own)."""
    current = _annotations.get()
    if current is not None:
        current.update(fields)


def request_fields() -> dict[str, object]:
    return _annotations.get() or {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "request_id": request_id.get(),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
