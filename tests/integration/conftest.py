from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import pytest

from tests.helpers import ROLE, LaminaServer, make_zip

_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaminaServer]:
    srv = LaminaServer(tmp_path_factory.mktemp("lamina")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def lam(server: LaminaServer) -> Any:
    return server.client()


@pytest.fixture
def fn_name(request: pytest.FixtureRequest) -> str:
    return f"t{next(_names)}-{request.node.name[:40]}".replace("[", "-").replace("]", "").replace(".", "-")


HELLO = "def handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"


@pytest.fixture
def make_function(lam: Any, fn_name: str) -> Callable[..., dict[str, Any]]:
    """Create a function (python3.12 unless told) and wait until it is Active."""
    def make(files: dict[str, str | bytes] | None = None, name: str | None = None,
             modes: dict[str, int] | None = None, **kwargs: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"FunctionName": name or fn_name, "Runtime": "python3.12",
                                  "Handler": "lambda_function.handler", "Role": ROLE,
                                  "Code": {"ZipFile": make_zip(files or {"lambda_function.py": HELLO}, modes)}}
        params.update(kwargs)
        cfg = lam.create_function(**params)
        lam.get_waiter("function_active_v2").wait(FunctionName=params["FunctionName"],
                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return dict(cfg)
    return make


