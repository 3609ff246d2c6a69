"""Node.js, custom runtimes (provided.al2023) and AWS's own Python runtime client against Lamina."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

NODE_ASYNC = """
let count = 0;
exports.handler = async (event, context) => {
  count += 1;
  if (event.fail) { throw new TypeError("node broke"); }
  return { hello: event.name || "world", count, requestId: context.awsRequestId,
           memory: context.memoryLimitInMB, fn: context.functionName };
};
"""
NODE_CALLBACK = """
exports.handler = (event, context, callback) => {
  setTimeout(() => callback(null, { via: "callback", doubled: event.n * 2 }), 10);
};
"""
# A custom runtime in plain bash: the Runtime API over /dev/tcp, no other tools needed.
BASH_BOOTSTRAP = r"""#!/bin/bash
set -euo pipefail
HOST=${AWS_LAMBDA_RUNTIME_API%:*}; PORT=${AWS_LAMBDA_RUNTIME_API#*:}
while true; do
  exec 3<>/dev/tcp/$HOST/$PORT
  printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$HOST" >&3
  RID=""; LEN=0
  while IFS= read -r line <&3; do
    line=${line%$'\r'}
    [ -z "$line" ] && break
    case "${line,,}" in
      lambda-runtime-aws-request-id:*) RID=${line#*: } ;;
      content-length:*) LEN=${line#*: } ;;
    esac
  done
  BODY=$(head -c "$LEN" <&3); exec 3>&-
  echo "custom runtime got $BODY"
  RESP="{\"echo\": $BODY, \"runtime\": \"bash\"}"
  exec 3<>/dev/tcp/$HOST/$PORT
  printf 'POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$RID" "$HOST" "${#RESP}" "$RESP" >&3
  cat <&3 >/dev/null; exec 3>&-
done
"""


def call(lam: Any, name: str, event: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return resp, json.loads(resp["Payload"].read())


@pytest.mark.skipif(not Path("/usr/bin/node").exists(), reason="Node.js is not installed")
def test_node_async_and_callback_handlers(lam: Any, make_function: Any, fn_name: str) -> None:
    make_function({"index.js": NODE_ASYNC}, Runtime="nodejs20.x", Handler="index.handler", MemorySize=512)
    resp, body = call(lam, fn_name, {"name": "node"})
    assert body["hello"] == "node" and body["count"] == 1 and body["memory"] == "512"
    assert body["requestId"] == resp["ResponseMetadata"]["RequestId"]
    assert call(lam, fn_name, {})[1]["count"] == 2
    resp, err = call(lam, fn_name, {"fail": True})
    assert resp["FunctionError"] == "Unhandled" and err["errorType"] == "TypeError"
    assert err["errorMessage"] == "node broke"
    make_function({"cb.js": NODE_CALLBACK}, name=fn_name + "-cb", Runtime="nodejs20.x", Handler="cb.handler")
    assert call(lam, fn_name + "-cb", {"n": 21})[1] == {"via": "callback", "doubled": 42}


def test_custom_runtime_bootstrap_in_bash(lam: Any, make_function: Any, fn_name: str) -> None:
    from tests.helpers import make_zip
    zipped = make_zip({"bootstrap": BASH_BOOTSTRAP}, modes={"bootstrap": 0o755})
    lam.create_function(FunctionName=fn_name, Runtime="provided.al2023", Handler="unused", Code={"ZipFile": zipped},
                        Role="arn:aws:iam::000000000000:role/r")
    lam.get_waiter("function_active_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1})
    for i in range(2):
        assert call(lam, fn_name, {"i": i})[1] == {"echo": {"i": i}, "runtime": "bash"}


def test_custom_runtime_without_bootstrap(lam: Any, make_function: Any, fn_name: str) -> None:
    make_function({"main.sh": "echo hi"}, Runtime="provided.al2023", Handler="x")
    resp, body = call(lam, fn_name, {})
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.InvalidEntrypoint"
    assert "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]" in body["errorMessage"]


def _site_packages() -> Path:
    return Path(next(p for p in sys.path if p.endswith("site-packages")))


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="awslambdaric's binary is built for the test venv's 3.11")
def test_awslambdaric_runs_unchanged(lam: Any, make_function: Any, fn_name: str, tmp_path: Path) -> None:
    """AWS's own runtime client from PyPI, shipped in the zip and started by an exec wrapper."""
    pytest.importorskip("awslambdaric")
    site = _site_packages()
    files: dict[str, str | bytes] = {}
    for pattern in ("awslambdaric/**/*", "simplejson/**/*", "snapshot_restore_py.py", "runtime_client*.so"):
        for path in site.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts:
                files["deps/" + path.relative_to(site).as_posix()] = path.read_bytes()
    files["app.py"] = "def handler(event, context):\n    return {'ric': True, 'rid': context.aws_request_id, 'e': event}\n"
    files["wrapper.sh"] = ("#!/bin/sh\nexport PYTHONPATH=/var/task/deps:/var/task\n"
                           "exec /var/lang/bin/python3.11 -m awslambdaric app.handler\n")
    make_function(files, modes={"wrapper.sh": 0o755}, Runtime="python3.11", Handler="app.handler",
                  Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrapper.sh"}})
    resp, body = call(lam, fn_name, {"x": 1})
    assert body == {"ric": True, "rid": resp["ResponseMetadata"]["RequestId"], "e": {"x": 1}}
    resp, body = call(lam, fn_name, {"x": 2})
    assert body["e"] == {"x": 2}


VERSION_PROBE = "import sys\ndef handler(event, context):\n    return list(sys.version_info[:2])\n"


@pytest.mark.parametrize("runtime", ["python3.9", "python3.10", "python3.13", "python3.14"])
def test_python_versions_and_the_fallback(lam: Any, make_function: Any, fn_name: str, runtime: str) -> None:
    import base64
    make_function({"lambda_function.py": VERSION_PROBE}, Runtime=runtime)
    resp = lam.invoke(FunctionName=fn_name, LogType="Tail")
    got = json.loads(resp["Payload"].read())
    init_line = next(line for line in base64.b64decode(resp["LogResult"]).decode().splitlines()
                     if line.startswith("INIT_START"))
    wanted = [int(x) for x in runtime.removeprefix("python").split(".")]
    installed = any(Path("/root/.pyenv/versions").glob(f"{runtime.removeprefix('python')}.*"))
    if installed:
        assert got == wanted and "not installed" not in init_line
    else:
        assert got == [3, 11]
        assert f"{runtime} is not installed; python3.11 runs it" in init_line
