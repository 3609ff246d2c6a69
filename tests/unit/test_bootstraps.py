"""The in-sandbox runtime clients (lamina/runtimes/bootstrap/{python,node}).

Each test starts a stand-in Runtime API server, runs a bootstrap as a subprocess against it
with a temporary LAMBDA_TASK_ROOT, queues events and checks what the bootstrap posted back.
"""
from __future__ import annotations

import glob
import json
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BOOTSTRAP_DIR = Path(__file__).resolve().parents[2] / "lamina" / "runtimes" / "bootstrap"
PY_BOOTSTRAP = BOOTSTRAP_DIR / "python" / "bootstrap.py"
NODE_BOOTSTRAP = BOOTSTRAP_DIR / "node" / "bootstrap.js"
NODE = "/usr/bin/node"

WAIT = 15.0  # seconds; generous because the host's 2 cores are shared
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
API = "/2018-06-01/runtime"


# ---------------------------------------------------------------------------------------------
# Stand-in Runtime API.
#
# This is a TEST DOUBLE for Lamina's real Runtime API server, which is not written yet. It
# implements just enough of the documented 2018-06-01 protocol (long-poll /next, 202 on
# /response, /error and /init/error, HTTP/1.1 keep-alive) to observe what a bootstrap sends.
# ---------------------------------------------------------------------------------------------


@dataclass
class Post:
    kind: str                 # "response" | "error" | "init_error"
    request_id: str | None
    headers: Message          # case-insensitive, as received
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class FakeRuntimeAPI:
    events: queue.Queue = field(default_factory=queue.Queue)
    posts: queue.Queue = field(default_factory=queue.Queue)
    connections: set = field(default_factory=set)   # client (host, port) pairs seen
    server: ThreadingHTTPServer | None = None
    # Transport quirks a real server may show: close the connection after answering a POST
    # (without a "Connection: close" header), and send /next bodies chunked.
    drop_after_post: bool = False
    chunked_next: bool = False

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> "FakeRuntimeAPI":
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per response

            def log_message(self, *args):  # keep pytest output quiet
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                api.connections.add(self.client_address)
                if self.path != f"{API}/invocation/next":
                    return self._reply(404, b"{}")
                item = api.events.get()
                if item is None:  # shutting down: the bootstrap has already been killed
                    self.close_connection = True
                    return
                headers, body = item
                if not api.chunked_next:
                    return self._reply(200, body, headers)
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = len(body) // 2
                for part in (body[:half], body[half:]):
                    if part:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")

            def do_POST(self):
                api.connections.add(self.client_address)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                m = re.fullmatch(rf"{API}/invocation/([^/]+)/(response|error)", self.path)
                if m:
                    post = Post(m.group(2), m.group(1), self.headers, body)
                elif self.path == f"{API}/init/error":
                    post = Post("init_error", None, self.headers, body)
                else:
                    return self._reply(404, b"{}")
                api.posts.put(post)
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
                if api.drop_after_post:
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], ConnectionError):  # killed bootstraps are normal
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        for _ in range(8):
            self.events.put(None)
        self.server.shutdown()
        self.server.server_close()

    def invoke(self, event, request_id: str | None = None, headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> str:
        request_id = request_id or str(uuid.uuid4())
        h = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        }
        h.update(headers or {})
        self.events.put((h, raw if raw is not None else json.dumps(event).encode()))
        return request_id


@dataclass
class Run:
    proc: subprocess.Popen
    api: FakeRuntimeAPI
    task: str                 # the LAMBDA_TASK_ROOT given to the bootstrap
    _out: str | None = None

    def output(self) -> str:
        """Stop the bootstrap and return everything it wrote (stdout and stderr merged)."""
        if self._out is None:
            if self.proc.poll() is None:
                self.proc.kill()
            out, _ = self.proc.communicate(timeout=WAIT)
            self._out = out.decode("utf-8", "replace")
        return self._out

    def next_post(self, timeout: float = WAIT) -> Post:
        try:
            return self.api.posts.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the bootstrap posted nothing in time; its output:\n{self.output()}") from None

    def exit_code(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def api():
    a = FakeRuntimeAPI().start()
    yield a
    a.stop()


@pytest.fixture
def launch(api, tmp_path):
    """launch(argv, handler, files={...}, env={...}) -> Run; every process is killed at teardown."""
    runs: list[Run] = []

    def _launch(argv: list[str], handler: str, files: dict[str, str], env: dict[str, str] | None = None,
                cwd: str | None = None) -> Run:
        task = tmp_path / "task"
        for name, text in files.items():
            p = task / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(text))
        task.mkdir(exist_ok=True)
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(tmp_path),
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(task),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abc",
            "AWS_REGION": "us-east-1",
        }
        full_env.update(env or {})
        proc = subprocess.Popen(argv, cwd=cwd or task, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        run = Run(proc, api, str(task))
        runs.append(run)
        return run

    yield _launch
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
        try:
            run.proc.communicate(timeout=WAIT)
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------------------------


def _interpreters():
    params = []
    for minor in ("3.8", "3.9", "3.10", "3.12", "3.13"):
        found = sorted(glob.glob(f"/root/.pyenv/versions/{minor}.*/bin/python3"))
        if found:
            params.append(pytest.param(found[-1], id=f"py{minor}"))
        else:
            params.append(pytest.param(None, id=f"py{minor}",
                                       marks=pytest.mark.skip(reason=f"no CPython {minor} installed")))
    return params


def py(launch, handler, files, env=None, python=None, cwd=None):
    return launch([python or sys.executable, "-u", str(PY_BOOTSTRAP)], handler, files, env, cwd)


APP = """
import sys
calls = 0

def handler(event, context):
    global calls
    calls += 1
    if event.get("fail"):
        raise ValueError("boom: " + event["fail"])
    return {"echo": event, "calls": calls, "version": list(sys.version_info[:2])}
"""


def test_bootstrap_python_is_data_not_a_package():
    assert PY_BOOTSTRAP.is_file()
    assert not (PY_BOOTSTRAP.parent / "__init__.py").exists()


@pytest.mark.parametrize("python", _interpreters())
def test_python_success_and_error_on_each_interpreter(launch, api, python):
    run = py(launch, "app.handler", {"app.py": APP}, python=python)
    rid1 = api.invoke({"x": 1})
    post = run.next_post()
    assert (post.kind, post.request_id) == ("response", rid1)
    want_version = [int(v) for v in re.search(r"/(\d+)\.(\d+)\.", python).groups()]
    assert post.json() == {"echo": {"x": 1}, "calls": 1, "version": want_version}

    rid2 = api.invoke({"fail": "bad"})
    post = run.next_post()
    assert (post.kind, post.request_id) == ("error", rid2)
    assert post.headers["Lambda-Runtime-Function-Error-Type"] == "ValueError"
    err = post.json()
    assert set(err) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "boom: bad"
    assert err["requestId"] == rid2
    # Only the user's frames, formatted like traceback.format_list (no runtime frames, no carets).
    task = run.task
    assert err["stackTrace"] == [
        f'  File "{task}/app.py", line 9, in handler\n    raise ValueError("boom: " + event["fail"])\n'
    ]
    # One persistent keep-alive connection for /next, /response, /next, /error.
    assert len(api.connections) == 1

    out = run.output()
    assert ('[ERROR] ValueError: boom: bad\rTraceback (most recent call last):\r'
            f'\u00a0\u00a0File "{task}/app.py", line 9, in handler\r'
            '\u00a0\u00a0\u00a0\u00a0raise ValueError("boom: " + event["fail"])\n') in out


def _init_error(run: Run) -> dict:
    post = run.next_post()
    assert post.kind == "init_error", post
    err = post.json()
    assert post.headers["Lambda-Runtime-Function-Error-Type"] == err["errorType"]
    assert err["requestId"] == ""
    assert run.exit_code() == 1
    return err


def test_python_import_error_is_an_init_error(launch):
    run = py(launch, "nope.handler", {"app.py": APP})
    err = _init_error(run)
    assert err == {
        "errorMessage": "Unable to import module 'nope': No module named 'nope'",
        "errorType": "Runtime.ImportModuleError",
        "requestId": "",
        "stackTrace": [],
    }
    out = run.output()
    assert re.search(rf"^\[WARNING\]\t{ISO_MS}\t\tLAMBDA_WARNING: Unhandled exception\.", out, re.M)
    assert ("[ERROR] Runtime.ImportModuleError: Unable to import module 'nope': No module named 'nope'"
            "\rTraceback (most recent call last):\n") in out


def test_python_import_error_inside_user_module(launch):
    run = py(launch, "app.handler", {"app.py": "import not_installed_dep\n"})
    err = _init_error(run)
    assert err["errorType"] == "Runtime.ImportModuleError"
    assert err["errorMessage"] == "Unable to import module 'app': No module named 'not_installed_dep'"


def test_python_handler_not_found(launch):
    run = py(launch, "app.missing", {"app.py": APP})
    err = _init_error(run)
    assert err["errorType"] == "Runtime.HandlerNotFound"
    assert err["errorMessage"] == "Handler 'missing' missing on module 'app'"


def test_python_syntax_error(launch):
    run = py(launch, "bad.handler", {"bad.py": "def handler(event, context):\n    return (\n"})
    err = _init_error(run)
    assert err["errorType"] == "Runtime.UserCodeSyntaxError"
    assert err["errorMessage"].startswith("Syntax error in module 'bad': ")
    assert len(err["stackTrace"]) == 1
    assert err["stackTrace"][0].startswith(f'  File "{run.task}/bad.py" Line ')


def test_python_malformed_handler_name(launch):
    run = py(launch, "nodot", {"app.py": APP})
    err = _init_error(run)
    assert err["errorType"] == "Runtime.MalformedHandlerName"
    assert err["errorMessage"] == "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)"


def test_python_exception_while_importing(launch):
    run = py(launch, "app.handler", {"app.py": "x = 1\nraise RuntimeError('no config')\n"})
    err = _init_error(run)
    assert err["errorType"] == "RuntimeError"
    assert err["errorMessage"] == "no config"
    assert err["stackTrace"][-1] == f'  File "{run.task}/app.py", line 2, in <module>\n    raise RuntimeError(\'no config\')\n'
    assert not any("/bootstrap.py" in frame for frame in err["stackTrace"])


CONTEXT_APP = """
import os

def handler(event, context):
    cc = context.client_context
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "memory_type": type(context.memory_limit_in_mb).__name__,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "client_context": None if cc is None else {
            "custom": cc.custom, "env": cc.env, "installation_id": cc.client.installation_id},
        "tenant_id": context.tenant_id,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }
"""


def test_python_context(launch, api):
    run = py(launch, "app.handler", {"app.py": CONTEXT_APP})
    rid = api.invoke({}, headers={
        "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        "Lambda-Runtime-Client-Context": json.dumps({
            "client": {"installation_id": "inst-1", "app_title": "t"},
            "custom": {"k": "v"}, "env": {"platform": "linux"}}),
        "Lambda-Runtime-Cognito-Identity": json.dumps({
            "cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}),
        "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
    })
    ctx = run.next_post().json()
    assert 0 < ctx.pop("remaining") <= 30_000
    assert ctx == {
        "function_name": "fn",
        "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "memory_limit_in_mb": "256",
        "memory_type": "str",
        "aws_request_id": rid,
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2024/01/01/[$LATEST]abc",
        "identity": ["id-1", "pool-1"],
        "client_context": {"custom": {"k": "v"}, "env": {"platform": "linux"}, "installation_id": "inst-1"},
        "tenant_id": "tenant-7",
        "trace": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    }
    # Without the optional headers: no client context, empty identity, no tenant, trace unset.
    rid2 = api.invoke({})
    ctx = run.next_post().json()
    assert ctx["aws_request_id"] == rid2
    assert ctx["client_context"] is None
    assert ctx["identity"] == [None, None]
    assert ctx["tenant_id"] is None
    assert ctx["trace"] is None


def test_python_marshalling(launch, api):
    app = """
    import decimal

    def handler(event, context):
        kind = event["kind"]
        if kind == "none":
            return None
        if kind == "set":
            return {1, 2}
        if kind == "decimal":
            return {"d": decimal.Decimal("1.10"), "u": "caf\\u00e9"}
        if kind == "bytes":
            return b"\\x00raw"
        if kind == "big":
            return "x" * 300_000
    """
    run = py(launch, "app.handler", {"app.py": app})
    api.invoke({"kind": "none"})
    assert run.next_post().body == b"null"
    api.invoke({"kind": "set"})
    post = run.next_post()
    assert post.kind == "error"
    assert post.json()["errorType"] == "Runtime.MarshalError"
    assert post.json()["errorMessage"] == "Unable to marshal response: Object of type set is not JSON serializable"
    api.invoke({"kind": "decimal"})
    post = run.next_post()
    assert post.body in (b'{"d": 1.10, "u": "caf\\u00e9"}', '{"d": 1.10, "u": "café"}'.encode())
    api.invoke({"kind": "bytes"})
    post = run.next_post()
    assert post.body == b"\x00raw"
    assert post.headers["Content-Type"] == "application/unknown"
    api.invoke({"kind": "big"})
    assert run.next_post().json() == "x" * 300_000
    # A body that is not JSON is the runtime's error, not the handler's.
    api.invoke(None, raw=b"{not json")
    post = run.next_post()
    assert post.json()["errorType"] == "Runtime.UnmarshalError"


def test_python_globals_persist_and_nested_handler_path(launch, api):
    files = {
        "src/__init__.py": "",
        "src/app.py": "import os, sys\ncount = 0\ndef handler(event, context):\n"
                      "    global count\n    count += 1\n    return {'count': count, 'path': sys.path[:3], 'cwd': os.getcwd()}\n",
    }
    # cwd deliberately elsewhere: the bootstrap must go by LAMBDA_TASK_ROOT.
    run = py(launch, "src/app.handler", files, cwd="/")
    v = "%d.%d" % sys.version_info[:2]
    path = [run.task, f"/opt/python/lib/python{v}/site-packages", "/opt/python"]
    api.invoke({})
    assert run.next_post().json() == {"count": 1, "path": path, "cwd": "/"}
    api.invoke({})
    assert run.next_post().json() == {"count": 2, "path": path, "cwd": "/"}
    assert len(api.connections) == 1


def test_python_survives_dropped_keepalive_and_chunked_bodies(launch, api):
    api.drop_after_post = True
    api.chunked_next = True
    run = py(launch, "app.handler", {"app.py": APP})
    for i in (1, 2, 3):
        rid = api.invoke({"i": i})
        post = run.next_post()
        assert (post.kind, post.request_id) == ("response", rid)
        assert post.json()["echo"] == {"i": i}
    assert len(api.connections) >= 3  # it reconnected after each dropped connection



def _load_py_bootstrap():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lamina_test_py_bootstrap", PY_BOOTSTRAP)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _scripted_server(replies):
    """A raw-socket Runtime API that answers the n-th request on a connection with replies[n]:
    a list of byte pieces sent separately (so they arrive as separate segments), or None to
    close the connection without answering; a final "close" closes it after answering. Returns (address, requests seen)."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    seen = []
    todo = list(replies)

    def read_request(conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None, b""
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            rest += conn.recv(65536)
        seen.append((head.split(b"\r\n", 1)[0].decode(), rest[:n]))
        return True, rest[n:]

    def serve():
        while todo:
            conn, _ = srv.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            while todo:
                ok, buf = read_request(conn, buf)
                if ok is None:
                    break
                reply = todo.pop(0)
                if reply is None:
                    break
                for piece in reply:
                    if piece == "close":
                        break
                    conn.sendall(piece)
                    time.sleep(0.02)
                if reply[-1] == "close":
                    break
            conn.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return "127.0.0.1:%d" % srv.getsockname()[1], seen


def test_python_runtime_client_http_framing():
    b = _load_py_bootstrap()
    big = os.urandom(300_000)
    chunked = b"6\r\nhello \r\n5;ext=1\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n"
    addr, seen = _scripted_server([
        # headers and body split mid-header, a 100 Continue first, non-ASCII header values
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nX-U",
         b"tf: caf\xc3\xa9\r\nX-Latin: \xe9t\xe9\r\nContent-Length: 4\r\n\r\n", b"null"],
        [b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"],
        # bare-LF line endings; a large body arriving in many segments
        [b"HTTP/1.1 200 OK\nlambda-runtime-aws-request-id:  r2 \nContent-Length: %d\n\n" % len(big),
         big[:1000], big[1000:]],
        [b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"],
        # chunked, split inside the chunk framing
        [b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r3\r\nTransfer-Encoding: chunked\r\n\r\n",
         chunked[:4], chunked[4:20], chunked[20:]],
        None,  # the kept-alive connection dies before answering: retried on a new connection
        [b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r/4\r\n\r\n", b"until-eof", "close"],
        [b"HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad"],
    ])
    client = b.RuntimeClient(addr)
    headers, body = client.wait_next_invocation()
    assert body == b"null" and headers["lambda-runtime-aws-request-id"] == "r1"
    assert headers["x-utf"] == "caf\u00e9" and headers["x-latin"] == "\xe9t\xe9"
    client.post_invocation_result("r1", b"1", "application/json")
    headers, body = client.wait_next_invocation()
    assert headers["lambda-runtime-aws-request-id"] == "r2" and body == big
    client.post_invocation_result("r2", big, "application/octet-stream")
    headers, body = client.wait_next_invocation()
    assert body == b"hello world"
    client.post_invocation_result("r3", b'"x"', "application/json")
    headers, body = client.wait_next_invocation()
    assert body == b"until-eof" and headers["lambda-runtime-aws-request-id"] == "r/4"
    with pytest.raises(b.RuntimeAPIError):
        client.wait_next_invocation()
    assert [r for r, _ in seen] == [
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        "POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1",
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        "POST /2018-06-01/runtime/invocation/r2/response HTTP/1.1",
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        "POST /2018-06-01/runtime/invocation/r3/response HTTP/1.1",
        "POST /2018-06-01/runtime/invocation/r3/response HTTP/1.1",
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1",
    ]
    assert seen[3][1] == big and seen[6][1] == b'"x"'


LOGGING_APP = """
import logging
import sys

def handler(event, context):
    print("plain print")
    logging.getLogger().warning("hello %s", "world")
    logging.info("info line")
    sys.stderr.write("to stderr\\n")
    return "ok"
"""


def test_python_logging_format(launch, api):
    run = py(launch, "app.handler", {"app.py": LOGGING_APP})
    rid = api.invoke({})
    assert run.next_post().body == b'"ok"'
    out = run.output()
    assert "plain print\n" in out
    assert "to stderr\n" in out
    assert re.search(rf"^\[WARNING\]\t{ISO_MS}\t{rid}\thello world$", out, re.M)
    # Like AWS, the root logger keeps Python's default WARNING level unless AWS_LAMBDA_LOG_LEVEL says otherwise.
    assert "info line" not in out


def test_python_log_level_and_json_format(launch, api):
    run = py(launch, "app.handler", {"app.py": LOGGING_APP},
             env={"AWS_LAMBDA_LOG_LEVEL": "INFO", "AWS_LAMBDA_LOG_FORMAT": "JSON"})
    rid = api.invoke({})
    assert run.next_post().body == b'"ok"'
    records = [json.loads(line) for line in run.output().splitlines() if line.startswith("{")]
    by_msg = {r["message"]: r for r in records}
    assert by_msg["info line"]["level"] == "INFO"
    rec = by_msg["hello world"]
    assert rec["level"] == "WARNING" and rec["requestId"] == rid and rec["logger"] == "root"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["timestamp"])


# ---------------------------------------------------------------------------------------------
# Node.js
# ---------------------------------------------------------------------------------------------

needs_node = pytest.mark.skipif(not os.path.exists(NODE), reason=f"{NODE} is not installed")


def node(launch, handler, files, env=None, cwd=None):
    return launch([NODE, str(NODE_BOOTSTRAP)], handler, files, env, cwd)


NODE_APP = """
let calls = 0;
exports.handler = async (event, context) => {
  calls += 1;
  console.log('hello %s', 'world', {calls});
  if (event.fail) {
    throw new TypeError('boom: ' + event.fail);
  }
  return { echo: event, calls };
};
"""


@needs_node
def test_node_async_success_error_and_logging(launch, api):
    run = node(launch, "app.handler", {"app.js": NODE_APP})
    rid1 = api.invoke({"x": 1})
    post = run.next_post()
    assert (post.kind, post.request_id) == ("response", rid1)
    assert post.json() == {"echo": {"x": 1}, "calls": 1}

    rid2 = api.invoke({"fail": "bad"})
    post = run.next_post()
    assert (post.kind, post.request_id) == ("error", rid2)
    assert post.headers["Lambda-Runtime-Function-Error-Type"] == "TypeError"
    err = post.json()
    assert set(err) == {"errorType", "errorMessage", "trace"}
    assert err["errorType"] == "TypeError"
    assert err["errorMessage"] == "boom: bad"
    assert err["trace"][0] == "TypeError: boom: bad"
    assert f"{run.task}/app.js" in err["trace"][1]
    assert len(api.connections) == 1

    out = run.output()
    assert re.search(rf"^{ISO_MS}\t{rid1}\tINFO\thello world {{ calls: 1 }}$", out, re.M)
    m = re.search(rf"^{ISO_MS}\t{rid2}\tERROR\tInvoke Error \t(\{{.*\}})$", out, re.M)
    assert m, out
    logged = json.loads(m.group(1).replace("\r", "\n"))
    assert logged["errorType"] == "TypeError" and logged["errorMessage"] == "boom: bad"


@needs_node
def test_node_callback_handler_and_context(launch, api):
    app = """
    exports.handler = function (event, context, callback) {
      callback(null, {
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        invokedFunctionArn: context.invokedFunctionArn,
        memoryLimitInMB: context.memoryLimitInMB,
        awsRequestId: context.awsRequestId,
        logGroupName: context.logGroupName,
        logStreamName: context.logStreamName,
        remaining: context.getRemainingTimeInMillis(),
        clientContext: context.clientContext,
        identity: context.identity,
        waits: context.callbackWaitsForEmptyEventLoop,
        trace: process.env._X_AMZN_TRACE_ID,
      });
    };
    """
    run = node(launch, "app.handler", {"app.js": app})
    rid = api.invoke({}, headers={
        "Lambda-Runtime-Trace-Id": "Root=1-abc",
        "Lambda-Runtime-Client-Context": json.dumps({"custom": {"k": "v"}}),
        "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-1"}),
    })
    ctx = run.next_post().json()
    assert 0 < ctx.pop("remaining") <= 30_000
    assert ctx == {
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "memoryLimitInMB": "256",
        "awsRequestId": rid,
        "logGroupName": "/aws/lambda/fn",
        "logStreamName": "2024/01/01/[$LATEST]abc",
        "clientContext": {"custom": {"k": "v"}},
        "identity": {"cognitoIdentityId": "id-1"},
        "waits": True,
        "trace": "Root=1-abc",
    }


@needs_node
def test_node_callback_waits_for_empty_event_loop(launch, api):
    app = """
    let n = 0;
    exports.handler = (event, context, callback) => {
      n += 1;
      context.callbackWaitsForEmptyEventLoop = event.wait;
      setTimeout(() => console.log('timer fired'), 300);
      callback(null, {n, at: Date.now()});
    };
    """
    run = node(launch, "app.handler", {"app.js": app})
    t0 = time.time() * 1000
    api.invoke({"wait": True})
    post = run.next_post()
    assert post.json()["n"] == 1
    # The response went out only after the pending timer ran (loop drained).
    assert time.time() * 1000 - t0 >= 250
    api.invoke({"wait": False})
    assert run.next_post().json()["n"] == 2  # globals persist; sent without waiting


@needs_node
def test_node_esm_handlers(launch, api):
    run = node(launch, "app.handler", {
        "app.mjs": "let n = 0;\nexport const handler = async (event) => ({ esm: true, n: ++n });\n"}, cwd="/")
    api.invoke({})
    assert run.next_post().json() == {"esm": True, "n": 1}
    api.invoke({})
    assert run.next_post().json() == {"esm": True, "n": 2}


@needs_node
def test_node_package_type_module(launch, api):
    run = node(launch, "lib/app.handler", {
        "package.json": '{"type": "module"}',
        "lib/app.js": "export async function handler(event) { return { typeModule: import.meta.url.startsWith('file:') }; }\n",
    })
    api.invoke({})
    assert run.next_post().json() == {"typeModule": True}


@needs_node
def test_node_survives_dropped_keepalive_and_chunked_bodies(launch, api):
    api.drop_after_post = True
    api.chunked_next = True
    run = node(launch, "app.handler", {"app.js": NODE_APP})
    for i in (1, 2, 3):
        rid = api.invoke({"i": i})
        post = run.next_post()
        assert (post.kind, post.request_id) == ("response", rid)
        assert post.json()["echo"] == {"i": i}


def _node_init_error(run: Run) -> dict:
    post = run.next_post()
    assert post.kind == "init_error", post
    err = post.json()
    assert post.headers["Lambda-Runtime-Function-Error-Type"] == err["errorType"]
    assert run.exit_code() == 129
    return err


@needs_node
def test_node_import_module_error(launch):
    run = node(launch, "missing.handler", {"app.js": NODE_APP})
    err = _node_init_error(run)
    assert err["errorType"] == "Runtime.ImportModuleError"
    assert err["errorMessage"].startswith("Error: Cannot find module 'missing'")
    assert err["trace"][0].startswith("Runtime.ImportModuleError: Error: Cannot find module 'missing'")
    out = run.output()
    assert re.search(rf"^{ISO_MS}\tundefined\tERROR\tUncaught Exception \t\{{\"errorType\":\"Runtime.ImportModuleError\"",
                     out, re.M), out


@needs_node
def test_node_handler_not_found(launch):
    run = node(launch, "app.nothere", {"app.js": NODE_APP})
    err = _node_init_error(run)
    assert err["errorType"] == "Runtime.HandlerNotFound"
    assert err["errorMessage"] == "app.nothere is undefined or not exported"


@needs_node
def test_node_syntax_error(launch):
    run = node(launch, "app.handler", {"app.js": "exports.handler = async () => {\n"})
    err = _node_init_error(run)
    assert err["errorType"] == "Runtime.UserCodeSyntaxError"
    assert err["errorMessage"].startswith("SyntaxError: ")
