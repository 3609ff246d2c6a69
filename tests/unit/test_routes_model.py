"""The routes table must match botocore's Lambda service model, operation by operation."""
from __future__ import annotations

import botocore.session

from lamina.api.routes import OPERATIONS


def test_routes_match_botocore() -> None:
    model = botocore.session.get_session().get_service_model("lambda")
    checked = 0
    for op in OPERATIONS:
        if not op.aws:
            continue
        http = model.operation_model(op.name).http
        path, _, query = http["requestUri"].partition("?")
        assert (op.method, op.path) == (http["method"], path.rstrip("/") or "/"), op.name
        assert (op.query_selector or "") == query, op.name
        checked += 1
    assert checked >= 12
