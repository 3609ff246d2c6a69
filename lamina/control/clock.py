"""Timestamps in the formats AWS uses."""
from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def last_modified(t: dt.datetime | None = None) -> str:
    """`2025-01-01T00:00:00.000+0000`, the FunctionConfiguration.LastModified format."""
    t = t or now()
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"
