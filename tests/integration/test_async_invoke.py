"""Event invokes: 202 only once stored, run by the worker, retried on error, kept across kill -9."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import ROLE, LaminaServer, make_zip

# The function reports each run to a recorder the test listens with on loopback.
REPORTER = '''
import json, os, time, urllib.request
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    body = json.dumps({"event": event, "request_id": context.aws_request_id}).encode()
    urllib.request.urlopen(urllib.request.Request(event["report_to"], data=body, method="POST"), timeout=5)
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return "ok"
'''


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                recorder.calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.calls


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.server.shutdown()


def test_event_invoke_answers_202_and_runs(lam: Any, make_function: Any, fn_name: str, recorder: Recorder) -> None:
    make_function({"lambda_function.py": REPORTER}, Timeout=10)
    resp = lam.invoke(FunctionName=fn_name, InvocationType="Event",
                      Payload=json.dumps({"report_to": recorder.url, "n": 1}).encode())
    assert resp["StatusCode"] == 202 and resp["Payload"].read() == b""
    calls = recorder.wait_for(1, 20)
    assert calls[0]["event"]["n"] == 1
    assert calls[0]["request_id"] == resp["ResponseMetadata"]["RequestId"]   # the 202's id is the run's id


def test_failed_event_is_retried_twice_with_the_same_request_id(lam: Any, make_function: Any, fn_name: str,
                                                                recorder: Recorder) -> None:
    make_function({"lambda_function.py": REPORTER}, Timeout=10)
    resp = lam.invoke(FunctionName=fn_name, InvocationType="Event",
                      Payload=json.dumps({"report_to": recorder.url, "fail": True}).encode())
    calls = recorder.wait_for(3, 30)
    assert len(calls) == 3
    assert {c["request_id"] for c in calls} == {resp["ResponseMetadata"]["RequestId"]}
    time.sleep(3)
    assert len(recorder.calls) == 3                                     # retries stop after two


def test_event_limits(lam: Any, make_function: Any, fn_name: str) -> None:
    make_function({"lambda_function.py": REPORTER})
    with pytest.raises(lam.exceptions.ClientError) as e:
        lam.invoke(FunctionName=fn_name, InvocationType="Event", Payload=json.dumps({"x": "y" * 300_000}).encode())
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "payload is too large for the Event invocation type" in e.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=fn_name + "-missing", InvocationType="Event", Payload=b"{}")


def test_accepted_event_survives_kill_9(tmp_path: Path, recorder: Recorder) -> None:
    srv = LaminaServer(tmp_path / "data").start()
    try:
        lam = srv.client()
        lam.create_function(FunctionName="durable", Runtime="python3.12", Handler="lambda_function.handler",
                            Role=ROLE, Timeout=30, Code={"ZipFile": make_zip({"lambda_function.py": REPORTER})})
        lam.get_waiter("function_active_v2").wait(FunctionName="durable", WaiterConfig={"Delay": 1})
        resp = lam.invoke(FunctionName="durable", InvocationType="Event",
                          Payload=json.dumps({"report_to": recorder.url, "sleep": 3, "n": 7}).encode())
        assert resp["StatusCode"] == 202
        time.sleep(0.5)                     # the worker has claimed it and the function is sleeping
        srv.kill9()
        assert recorder.calls == []
        srv.start()
        calls = recorder.wait_for(1, 30)
        assert [c["event"]["n"] for c in calls] == [7]
    finally:
        srv.stop()
