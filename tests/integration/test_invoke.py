"""Synchronous invoke of real Python functions in real sandboxes, as boto3 sees it."""
from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions
import pytest

from tests.helpers import LaminaServer

PROBE = '''
import json, os, uuid
ENV_ID = uuid.uuid4().hex
INITS = 0
INITS += 1
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    action = event.get("action")
    if action == "fail":
        raise ValueError("it broke")
    if action == "sleep":
        import time; time.sleep(event["seconds"])
    if action == "exit":
        os._exit(event.get("code", 3))
    if action == "alloc":
        blob = bytearray(event["mb"] * 1024 * 1024)
        for i in range(0, len(blob), 4096):
            blob[i] = 1
    if action == "big":
        return "x" * event["bytes"]
    if action == "write_tmp":
        open("/tmp/marker", "w").write(event["value"])
    if action == "read":
        try:
            return {"content": open(event["path"]).read()[:100]}
        except Exception as e:
            return {"error": type(e).__name__}
    if action == "listdir":
        try:
            return {"entries": sorted(os.listdir(event["path"]))}
        except Exception as e:
            return {"error": type(e).__name__}
    if action == "write":
        try:
            open(event["path"], "w").write("x")
            return {"wrote": True}
        except Exception as e:
            return {"error": type(e).__name__}
    if action == "print":
        print(event["text"])
    tmp = open("/tmp/marker").read() if os.path.exists("/tmp/marker") else None
    return {"env_id": ENV_ID, "inits": INITS, "calls": CALLS, "tmp": tmp, "uid": os.getuid(),
            "request_id": context.aws_request_id, "function_name": context.function_name,
            "version": context.function_version, "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb, "remaining": context.get_remaining_time_in_millis(),
            "log_group": context.log_group_name, "log_stream": context.log_stream_name,
            "client_custom": context.client_context.custom if context.client_context else None,
            "environ": {k: v for k, v in os.environ.items()}, "pids": [p for p in os.listdir("/proc") if p.isdigit()]}
'''


def call(lam: Any, name: str, event: dict[str, Any] | None = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    return resp, json.loads(resp["Payload"].read() or b"null")


@pytest.fixture
def probe(make_function: Any) -> str:
    return str(make_function({"lambda_function.py": PROBE}, Timeout=5, MemorySize=256)["FunctionName"])


def test_invoke_returns_payload_version_and_request_id(lam: Any, probe: str) -> None:
    resp, body = call(lam, probe)
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert body["request_id"] == resp["ResponseMetadata"]["RequestId"]
    assert body["function_name"] == probe and body["version"] == "$LATEST"
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{probe}"
    assert body["memory"] == "256" and 0 < body["remaining"] <= 5000
    assert body["log_group"] == f"/aws/lambda/{probe}" and body["log_stream"]
    _, qualified = call(lam, probe, Qualifier="$LATEST")
    assert qualified["arn"].endswith(":$LATEST")


def test_lambda_environment_variables(lam: Any, make_function: Any) -> None:
    name = make_function({"lambda_function.py": PROBE}, Environment={"Variables": {"MY_VAR": "mine"}})["FunctionName"]
    env = call(lam, name)[1]["environ"]
    assert env["MY_VAR"] == "mine"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST" and env["AWS_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["_HANDLER"] == "lambda_function.handler"
    assert env["TZ"] == ":UTC" and "/opt/lib" in env["LD_LIBRARY_PATH"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API"} <= set(env)
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")


def test_log_tail_has_start_end_report_and_init_only_when_cold(lam: Any, probe: str) -> None:
    resp, _ = call(lam, probe, {"action": "print", "text": "hello-log"}, LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    rid = resp["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {rid} Version: $LATEST" in log and "hello-log" in log
    assert f"END RequestId: {rid}" in log
    report = next(line for line in log.splitlines() if line.startswith("REPORT"))
    for part in ("Duration: ", "Billed Duration: ", "Memory Size: 256 MB", "Max Memory Used: ", "Init Duration: "):
        assert part in report
    assert report.endswith("\t")
    max_used = int(report.split("Max Memory Used: ")[1].split(" MB")[0])
    assert 1 <= max_used <= 256
    warm, _ = call(lam, probe, LogType="Tail")
    assert "Init Duration" not in base64.b64decode(warm["LogResult"]).decode()


def test_function_error_shape(lam: Any, probe: str) -> None:
    resp, body = call(lam, probe, {"action": "fail"}, LogType="Tail")
    assert resp["StatusCode"] == 200 and resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "it broke"
    assert body["requestId"] == resp["ResponseMetadata"]["RequestId"]
    assert any('File "/var/task/lambda_function.py"' in frame for frame in body["stackTrace"])
    assert "[ERROR] ValueError: it broke" in base64.b64decode(resp["LogResult"]).decode()


@pytest.mark.parametrize("files,handler,error_type,message", [
    ({"lambda_function.py": "import not_a_module\n"}, "lambda_function.handler", "Runtime.ImportModuleError",
     "Unable to import module 'lambda_function': No module named 'not_a_module'"),
    ({"lambda_function.py": "x = 1\n"}, "lambda_function.handler", "Runtime.HandlerNotFound",
     "Handler 'handler' missing on module 'lambda_function'"),
    ({"lambda_function.py": "def handler(:\n"}, "lambda_function.handler", "Runtime.UserCodeSyntaxError", None),
    ({"lambda_function.py": "raise KeyError('boom')\n"}, "lambda_function.handler", "KeyError", "'boom'"),
])
def test_init_errors(lam: Any, make_function: Any, files: dict[str, str], handler: str, error_type: str,
                     message: str | None) -> None:
    name = make_function(files, Handler=handler)["FunctionName"]
    for _ in range(2):    # the environment is discarded; the second invoke fails the same way
        resp, body = call(lam, name)
        assert resp["FunctionError"] == "Unhandled"
        assert body["errorType"] == error_type
        if message:
            assert body["errorMessage"] == message


def test_timeout_cuts_the_invoke_and_the_next_one_works(lam: Any, make_function: Any) -> None:
    name = make_function({"lambda_function.py": PROBE}, Timeout=1)["FunctionName"]
    first = call(lam, name)[1]
    started = time.monotonic()
    resp, body = call(lam, name, {"action": "sleep", "seconds": 5})
    assert time.monotonic() - started < 4.5
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"] == f"RequestId: {resp['ResponseMetadata']['RequestId']} Error: Task timed out after 1.00 seconds"
    after = call(lam, name)[1]
    assert after["env_id"] != first["env_id"] and after["calls"] == 1


def test_runtime_exit_is_exit_error_and_recovers(lam: Any, probe: str) -> None:
    resp, body = call(lam, probe, {"action": "exit", "code": 3})
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: exit status 3")
    assert call(lam, probe)[1]["calls"] == 1


def test_memory_limit_kills_the_environment(lam: Any, make_function: Any) -> None:
    name = make_function({"lambda_function.py": PROBE}, MemorySize=128, Timeout=10)["FunctionName"]
    resp, body = call(lam, name, {"action": "alloc", "mb": 400})
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError"
    assert "signal: killed" in body["errorMessage"]
    assert call(lam, name, {"action": "alloc", "mb": 20})[1]["calls"] == 1


def test_response_over_6mb(lam: Any, probe: str) -> None:
    resp, body = call(lam, probe, {"action": "big", "bytes": 6_400_000})
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Function.ResponseSizeTooLarge"
    assert body["errorMessage"] == "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
    assert len(call(lam, probe, {"action": "big", "bytes": 5_000_000})[1]) == 5_000_000


def test_request_over_6mb_and_bad_json(lam: Any, probe: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.invoke(FunctionName=probe, Payload=json.dumps({"x": "y" * 6_300_000}).encode())
    assert e.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(lam.exceptions.InvalidRequestContentException) as e2:
        lam.invoke(FunctionName=probe, Payload=b"{not json")
    assert "Could not parse request body into json" in e2.value.response["Error"]["Message"]


def test_dry_run_and_unknown_function(lam: Any, probe: str) -> None:
    assert lam.invoke(FunctionName=probe, InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.invoke(FunctionName="no-such-function-here")
    assert e.value.response["Error"]["Message"] == \
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function-here:$LATEST"


def test_warm_reuse_keeps_globals_and_tmp_init_runs_once(lam: Any, probe: str) -> None:
    first = call(lam, probe, {"action": "write_tmp", "value": "kept"})[1]
    second = call(lam, probe)[1]
    assert second["env_id"] == first["env_id"] and second["inits"] == 1
    assert second["calls"] == first["calls"] + 1 and second["tmp"] == "kept"


def test_parallel_invokes_use_separate_environments(lam: Any, probe: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: call(lam, probe, {"action": "sleep", "seconds": 1.5})[1], range(4)))
    env_ids = {b["env_id"] for b in bodies}
    assert len(env_ids) == 4
    assert all(b["tmp"] is None for b in bodies)


def test_client_context_reaches_the_handler(lam: Any, probe: str) -> None:
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}, "env": {}, "client": {}}).encode()).decode()
    assert call(lam, probe, ClientContext=ctx)[1]["client_custom"] == {"k": "v"}


def test_isolation(lam: Any, probe: str, make_function: Any, server: LaminaServer) -> None:
    other = make_function({"lambda_function.py": PROBE, "secret.txt": "other-function-secret"},
                          name=probe + "-other")["FunctionName"]
    call(lam, other, {"action": "write_tmp", "value": "other-tmp"})
    body = call(lam, probe)[1]
    assert body["uid"] != 0
    assert len(body["pids"]) < 10                                   # own pid namespace: no host processes
    assert call(lam, probe, {"action": "read", "path": "/var/task/secret.txt"})[1] == {"error": "FileNotFoundError"}
    assert call(lam, probe)[1]["tmp"] is None                       # the other's /tmp is not ours
    data_dir = call(lam, probe, {"action": "listdir", "path": str(server.data_dir)})[1]
    assert "error" in data_dir
    assert "error" in call(lam, probe, {"action": "listdir", "path": "/root"})[1]
    assert call(lam, probe, {"action": "read", "path": "/etc/shadow"})[1].get("error")
    assert "content" in call(lam, probe, {"action": "read", "path": "/var/task/lambda_function.py"})[1]
    assert call(lam, probe, {"action": "write", "path": "/var/task/new.py"})[1]["error"] in ("OSError", "PermissionError")
    assert call(lam, probe, {"action": "write", "path": "/tmp/ok"})[1] == {"wrote": True}


TENANT_PROBE = '''
import uuid
ENV = uuid.uuid4().hex
def handler(event, context):
    return {"env": ENV, "tenant": getattr(context, "tenant_id", None)}
'''


def test_tenant_isolation_mode_gives_each_tenant_its_own_environments(lam: Any, make_function: Any) -> None:
    name = make_function({"lambda_function.py": TENANT_PROBE},
                         TenancyConfig={"TenantIsolationMode": "PER_TENANT"})["FunctionName"]
    assert lam.get_function_configuration(FunctionName=name)["TenancyConfig"] == {"TenantIsolationMode": "PER_TENANT"}
    a1 = call(lam, name, TenantId="tenant-a")[1]
    b1 = call(lam, name, TenantId="tenant-b")[1]
    a2 = call(lam, name, TenantId="tenant-a")[1]
    assert (a1["tenant"], b1["tenant"]) == ("tenant-a", "tenant-b")
    assert a1["env"] == a2["env"] and a1["env"] != b1["env"]


SPIN = '''
import time
def handler(event, context):
    wall_end = time.monotonic() + event["seconds"]
    cpu_start = time.process_time()
    while time.monotonic() < wall_end:
        sum(range(1000))
    return time.process_time() - cpu_start
'''


def test_cpu_share_follows_memory(lam: Any, make_function: Any, fn_name: str) -> None:
    """128 MB buys ~7% of a vCPU, 1769 MB a whole one: CPU seconds per wall second must differ widely."""
    small = make_function({"lambda_function.py": SPIN}, name=fn_name + "-128", MemorySize=128, Timeout=10)
    big = make_function({"lambda_function.py": SPIN}, name=fn_name + "-1769", MemorySize=1769, Timeout=10)
    cpu_small = call(lam, small["FunctionName"], {"seconds": 1.0})[1]
    cpu_big = call(lam, big["FunctionName"], {"seconds": 1.0})[1]
    assert cpu_small < 0.25                 # the quota caps it near 0.07 s whatever else runs
    assert cpu_big > 3 * cpu_small


INTRUDER = '''
import json, os, urllib.error, urllib.request
def handler(event, context):
    if "target" not in event:
        return {"api": os.environ["AWS_LAMBDA_RUNTIME_API"]}
    out = {}
    for name, method, path in (("next", "GET", "/2018-06-01/runtime/invocation/next"),
                               ("respond", "POST", "/2018-06-01/runtime/invocation/fake/response")):
        req = urllib.request.Request("http://" + event["target"] + path, method=method,
                                     data=b"{}" if method == "POST" else None)
        try:
            out[name] = urllib.request.urlopen(req, timeout=3).status
        except urllib.error.HTTPError as e:
            out[name] = e.code
        except Exception as e:
            out[name] = type(e).__name__
    return out
'''


def test_a_function_cannot_use_another_environments_runtime_api(lam: Any, make_function: Any, fn_name: str) -> None:
    victim = make_function({"lambda_function.py": INTRUDER}, name=fn_name + "-victim")["FunctionName"]
    intruder = make_function({"lambda_function.py": INTRUDER}, name=fn_name + "-intruder")["FunctionName"]
    target = call(lam, victim)[1]["api"]                  # the victim's environment now waits in /next
    assert call(lam, intruder, {"target": target})[1] == {"next": 403, "respond": 403}
    assert call(lam, victim)[1]["api"] == target           # and the victim still works
