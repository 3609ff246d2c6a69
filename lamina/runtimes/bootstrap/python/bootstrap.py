"""Lamina's in-sandbox runtime client for Python functions.

Run inside the execution environment as::

    python3 -u /var/runtime/bootstrap.py        (cwd /var/task)

It speaks the AWS Lambda Runtime API (2018-06-01) to ``http://$AWS_LAMBDA_RUNTIME_API``
and reproduces the observable behaviour of AWS's Python runtime (awslambdaric): handler
resolution and its error types/messages, the context object, the root-logger format,
error payloads and error log records.

This file is data shipped into the sandbox, not part of the ``lamina`` package. It must run
unchanged on CPython 3.8 - 3.13 and use the standard library only. It sits on the cold-start
path, so it imports as little as possible and defers everything only needed on errors.
"""

import json
import logging
import os
import socket
import sys
import time

_API_PREFIX = "/2018-06-01/runtime"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# Error types, as awslambdaric names them.
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

ERROR_LOG_LINE_TERMINATE = "\r"
ERROR_LOG_IDENT = "\u00a0"  # NO-BREAK SPACE, as the AWS runtime indents error log lines

LAMBDA_UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: "
    "Unhandled exception. "
    "The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. "
    "To determine if the runtime has been updated, check the runtime version in the INIT_START log entry. "
    "If this error correlates with a change in the runtime version, you may be able to mitigate this "
    "error by temporarily rolling back to the previous runtime version. "
    "For more information, see https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)

# AWS's python3.12+ runtimes emit non-ASCII characters as-is in responses; older ones escape them.
_ENSURE_ASCII_OFF_ENVS = (
    "AWS_Lambda_python3.12",
    "AWS_Lambda_python3.13",
    "AWS_Lambda_python3.14",
    "AWS_Lambda_python3.15",
)

_GLOBAL_AWS_REQUEST_ID = None
_GLOBAL_TENANT_ID = None


class FaultException(Exception):
    def __init__(self, exception_type, msg, trace=None):
        Exception.__init__(self, msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


# --------------------------------------------------------------------------------------------
# JSON (de)serialisation
# --------------------------------------------------------------------------------------------

_DECIMAL_MARK = "\x00lamina-decimal:"


def _ensure_ascii():
    env = os.environ.get("AWS_EXECUTION_ENV")
    if env:
        return env not in _ENSURE_ASCII_OFF_ENVS
    return sys.version_info < (3, 12)


class _Encoder(json.JSONEncoder):
    """Encodes like awslambdaric's simplejson encoder (Decimal written as its exact literal)."""

    def __init__(self):
        json.JSONEncoder.__init__(self, ensure_ascii=_ensure_ascii(), allow_nan=True)
        self.saw_decimal = False

    def default(self, o):
        t = type(o)
        if t.__name__ == "Decimal" and t.__module__ in ("decimal", "_decimal", "_pydecimal"):
            if o.is_nan():
                return float("nan")
            self.saw_decimal = True
            return _DECIMAL_MARK + str(o) + "\x00"
        return json.JSONEncoder.default(self, o)


_ENCODER = None  # like awslambdaric's module-level encoder: configured once, then reused


def to_json(obj):
    global _ENCODER
    enc = _ENCODER
    if enc is None:
        enc = _ENCODER = _Encoder()
    enc.saw_decimal = False
    out = enc.encode(obj)
    if enc.saw_decimal:
        import re

        out = re.sub(r'"\\u0000lamina-decimal:([^"\\]*)\\u0000"', r"\1", out)
    return out


def _marshal_response(response):
    if isinstance(response, bytes):
        return response, "application/unknown"
    try:
        return to_json(response).encode("utf-8"), "application/json"
    except Exception as e:
        raise FaultException(MARSHAL_ERROR, "Unable to marshal response: {}".format(str(e)), None)


def _unmarshal_request(body, content_type):
    if content_type is not None and content_type.split(";", 1)[0].strip().lower() != "application/json":
        return body
    try:
        return json.loads(body)
    except Exception as e:
        raise FaultException(UNMARSHAL_ERROR, "Unable to unmarshal input: {}".format(str(e)), None)


# --------------------------------------------------------------------------------------------
# Runtime API client: one persistent HTTP/1.1 keep-alive connection over a plain socket.
# (http.client would cost ~10-40 ms of imports - it pulls in email.* and ssl - on every
# cold start, so this speaks the small subset of HTTP/1.1 the Runtime API needs.)
# --------------------------------------------------------------------------------------------


class RuntimeAPIError(Exception):
    def __init__(self, endpoint, status, body):
        Exception.__init__(
            self,
            "Request to Lambda Runtime '{}' endpoint failed. Reason: '{}'. Response body: '{}'".format(
                endpoint, status, body
            ),
        )
        self.endpoint = endpoint
        self.status = status
        self.body = body


class _NoResponse(ConnectionError):
    """The peer closed a connection before sending any part of a response."""


_SAFE_ID = None  # compiled on first use


def _header_value(value):
    value = str(value)
    if "\r" in value or "\n" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    return value


def _quote_id(request_id):
    global _SAFE_ID
    if request_id is None:
        return ""
    if _SAFE_ID is None:
        import re  # already imported by json

        _SAFE_ID = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
    if _SAFE_ID(request_id) is None:
        from urllib.parse import quote

        return quote(request_id, safe="")
    return request_id


_WS = " \t\n\r\x0b\x0c"  # what bytes.strip() strips


class RuntimeClient(object):
    def __init__(self, address):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            host, port = address, "80"
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self._addr = (host, int(port))
        agent = "aws-lambda-python/%d.%d.%d-lamina" % sys.version_info[:3]
        self._common = ("Host: %s\r\nUser-Agent: %s\r\n" % (address, agent)).encode("latin-1")
        self._next_request = (
            ("GET " + _API_PREFIX + "/invocation/next HTTP/1.1\r\n").encode("utf-8") + self._common + b"\r\n"
        )
        self._sock = None
        self._buf = b""  # received but not yet consumed
        self._started = False

    # -- transport ---------------------------------------------------------------------------

    def _connect(self):
        sock = socket.create_connection(self._addr)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._sock = sock
        self._buf = b""

    def close(self):
        sock = self._sock
        self._sock = None
        self._buf = b""
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _request(self, method, path, body=None, headers=None):
        head = method + " " + path + " HTTP/1.1\r\n"
        extra = ""
        if headers:
            for k, v in headers.items():
                extra += k + ": " + _header_value(v) + "\r\n"
        if body is not None:
            extra += "Content-Length: %d\r\n" % len(body)
        data = head.encode("utf-8") + self._common + extra.encode("utf-8") + b"\r\n"
        return self._exchange(data, body)

    def _exchange(self, data, body=None):
        if body is not None and len(body) <= 65536:  # small: one segment; large: skip the copy
            data += body
            body = None
        for attempt in (0, 1):
            reused = self._sock is not None
            if not reused:
                self._connect()
            self._started = False
            try:
                sock = self._sock
                sock.sendall(data)
                if body is not None:
                    sock.sendall(body)
                return self._read_response()
            except (OSError, ValueError):
                self.close()
                # A kept-alive connection the peer had already closed: retry once on a new one.
                if reused and attempt == 0 and not self._started:
                    continue
                raise

    # Receiving: one recv() into self._buf usually holds a whole response (headers and body).

    def _recv(self):
        data = self._sock.recv(65536)
        if data:
            self._started = True
        return data

    def _read_head(self):
        """The raw header block: the status line and header lines, without the blank line."""
        buf = self._buf
        scanned = 0
        while True:
            crlf = buf.find(b"\n\r\n", scanned)
            lf = buf.find(b"\n\n", scanned)
            if lf >= 0 and (crlf < 0 or lf < crlf):
                self._buf = buf[lf + 2:]
                return buf[:lf]
            if crlf >= 0:
                self._buf = buf[crlf + 3:]
                return buf[:crlf]
            scanned = max(0, len(buf) - 2)
            data = self._recv()
            if not data:
                self._buf = b""
                if not buf:
                    raise _NoResponse("Runtime API closed the connection without a response")
                raise ConnectionError("Runtime API closed the connection while sending headers")
            buf = buf + data if buf else data

    def _read_response(self):
        while True:
            if self._buf:
                self._started = True
            head = self._read_head()
            nl = head.find(b"\n")
            line = head if nl < 0 else head[: nl + 1]
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise ConnectionError("malformed status line from Runtime API: %r" % (line,))
            version, status = parts[0], int(parts[1])
            headers = {}
            if nl >= 0:
                block = head[nl + 1:]
                if block.isascii():
                    for h in block.decode("latin-1").split("\n"):
                        k, _, v = h.partition(":")
                        headers[k.strip(_WS).lower()] = v.strip(_WS)
                else:
                    for h in block.split(b"\n"):
                        k, _, v = h.partition(b":")
                        try:
                            v = v.strip().decode("utf-8")
                        except UnicodeDecodeError:
                            v = v.strip().decode("latin-1")
                        headers[k.strip().decode("latin-1").lower()] = v
            if 100 <= status < 200:
                continue
            break
        conn = headers.get("connection", "").lower()
        close = "close" in conn or (version == b"HTTP/1.0" and "keep-alive" not in conn)
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body = self._read_exact(n) if n else b""
        else:
            body = self._read_to_eof()
            close = True
        if close:
            self.close()
        return status, headers, body

    def _recv_into_buf(self):
        data = self._recv()
        if data:
            self._buf = self._buf + data if self._buf else data
        return bool(data)

    def _read_exact(self, n):
        buf = self._buf
        if len(buf) >= n:
            if len(buf) == n:
                self._buf = b""
                return buf
            self._buf = buf[n:]
            return buf[:n]
        out = bytearray(n)
        view = memoryview(out)
        have = len(buf)
        view[:have] = buf
        self._buf = b""
        sock = self._sock
        while have < n:
            got = sock.recv_into(view[have:], min(n - have, 1 << 20))
            if not got:
                raise ConnectionError("Runtime API closed the connection mid-body")
            have += got
        view.release()
        return bytes(out)

    def _read_line(self):
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[: i + 1], self._buf[i + 1:]
                return line
            if not self._recv_into_buf():
                line, self._buf = self._buf, b""
                return line

    def _read_to_eof(self):
        chunks = [self._buf]
        self._buf = b""
        while True:
            data = self._recv()
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def _read_chunked(self):
        chunks = []
        while True:
            line = self._read_line()
            if not line:
                raise ConnectionError("Runtime API closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers
                    t = self._read_line()
                    if not t or t in (b"\r\n", b"\n"):
                        break
                break
            chunks.append(self._read_exact(size))
            self._read_line()  # CRLF after each chunk
        return b"".join(chunks)

    # -- Runtime API ---------------------------------------------------------------------------

    def wait_next_invocation(self):
        status, headers, body = self._exchange(self._next_request)
        if status != 200:
            raise RuntimeAPIError(_API_PREFIX + "/invocation/next", status, body)
        return headers, body

    def _post(self, endpoint, body, headers):
        status, _, resp = self._request("POST", endpoint, body, headers)
        if not 200 <= status < 300:
            raise RuntimeAPIError(endpoint, status, resp)

    def post_invocation_result(self, invoke_id, body, content_type):
        endpoint = _API_PREFIX + "/invocation/" + _quote_id(invoke_id) + "/response"
        try:
            # The _request() headers for this POST, built directly (it is on every invoke's path).
            data = b"".join(
                (
                    b"POST ",
                    endpoint.encode("utf-8"),
                    b" HTTP/1.1\r\n",
                    self._common,
                    b"Content-Type: ",
                    _header_value(content_type).encode("utf-8"),
                    b"\r\nContent-Length: %d\r\n\r\n" % len(body),
                )
            )
            status, _, resp = self._exchange(data, body)
            if not 200 <= status < 300:
                raise RuntimeAPIError(endpoint, status, resp)
        except (RuntimeAPIError, OSError) as e:
            # The platform rejected the response (e.g. 413: too large, possibly closing the
            # connection mid-upload) and records the failure itself; keep serving invokes. If
            # the platform is really gone, the next /next fails and the process exits.
            _diag("posting the response failed: %s" % (e,))

    def post_invocation_error(self, invoke_id, error_result):
        endpoint = _API_PREFIX + "/invocation/" + _quote_id(invoke_id) + "/error"
        headers = {"Content-Type": "application/json", _ERROR_TYPE_HEADER: error_result["errorType"] or ""}
        try:
            self._post(endpoint, to_json(error_result).encode("utf-8"), headers)
        except (RuntimeAPIError, OSError) as e:
            _diag("posting the error failed: %s" % (e,))

    def post_init_error(self, error_result):
        endpoint = _API_PREFIX + "/init/error"
        headers = {"Content-Type": "application/json", _ERROR_TYPE_HEADER: error_result["errorType"] or ""}
        self._post(endpoint, to_json(error_result).encode("utf-8"), headers)


def _diag(msg):
    try:
        sys.__stderr__.write("[lamina-bootstrap] " + msg + "\n")
        sys.__stderr__.flush()
    except Exception:
        pass


def _flush_output():
    """Everything written before a POST belongs to that invoke: push it into the pipe first."""
    out, err, out0, err0 = sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__
    for s in (
        out,
        err if err is not out else None,
        out0 if out0 is not out and out0 is not err else None,
        err0 if err0 is not out and err0 is not err and err0 is not out0 else None,
    ):
        if s is not None:
            try:
                s.flush()
            except Exception:
                pass


# --------------------------------------------------------------------------------------------
# Context object (attribute-for-attribute like awslambdaric's LambdaContext)
# --------------------------------------------------------------------------------------------

W3C_ALLOWED_FIELDS = ("traceparent", "tracestate", "baggage")


class LambdaContext(object):
    def __init__(
        self,
        invoke_id,
        client_context,
        cognito_identity,
        epoch_deadline_time_in_ms,
        invoked_function_arn=None,
        tenant_id=None,
    ):
        environ = os.environ
        self.aws_request_id = invoke_id
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._w3c_fields = self._extract_and_strip_w3c(client_context)

        self.client_context = _make_obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _make_obj_from_dict(Client, self.client_context.client)

        self.identity = _make_obj_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")

        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self):
        delta_ms = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def w3c(self):
        """The W3C trace-context fields that arrived in the client context."""
        return dict(self._w3c_fields)

    @staticmethod
    def _extract_and_strip_w3c(client_context):
        if not isinstance(client_context, dict) or "w3c" not in client_context:
            return {}
        raw = client_context.pop("w3c")
        if not isinstance(raw, dict):
            return {}
        return dict((k, raw[k]) for k in W3C_ALLOWED_FIELDS if isinstance(raw.get(k), str))

    def log(self, msg):
        for handler in logging.getLogger().handlers:
            if hasattr(handler, "log_sink"):
                handler.log_sink.log(str(msg))
                return
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "%s([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,"
            "identity=%s,tenant_id=%s])"
            % (
                self.__class__.__name__,
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
                self.tenant_id,
            )
        )


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "%s([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.__class__.__name__,
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return "%s([installation_id=%s,app_title=%s,app_version_name=%s,app_version_code=%s,app_package_name=%s])" % (
            self.__class__.__name__,
            self.installation_id,
            self.app_title,
            self.app_version_name,
            self.app_version_code,
            self.app_package_name,
        )


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "%s([custom=%s,env=%s,client=%s])" % (self.__class__.__name__, self.custom, self.env, self.client)


def _make_obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    get = d.get if isinstance(d, dict) else (lambda _k, _d=None: None)
    for field in cls.__slots__:
        setattr(obj, field, get(field, None))
    return obj


def _parse_json_header(header, name):
    try:
        return json.loads(header)
    except Exception as e:
        raise FaultException(
            LAMBDA_CONTEXT_UNMARSHAL_ERROR, "Unable to parse {} JSON: {}".format(name, str(e)), None
        )


def create_lambda_context(client_context_json, cognito_identity_json, deadline_ms, invoke_id, arn, tenant_id):
    client_context = None
    if client_context_json:
        client_context = _parse_json_header(client_context_json, "Client Context")
    cognito_identity = None
    if cognito_identity_json:
        cognito_identity = _parse_json_header(cognito_identity_json, "Cognito Identity")
    return LambdaContext(invoke_id, client_context, cognito_identity, deadline_ms, arn, tenant_id)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def make_error(error_message, error_type, stack_trace, invoke_id=None):
    return {
        "errorMessage": error_message if error_message else "",
        "errorType": error_type if error_type else "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _user_frames(tb):
    """Traceback frames as tuples, with the runtime's own leading frames dropped."""
    import traceback

    tuples = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i in range(len(tuples)):
        if "/bootstrap.py" not in tuples[i][0]:
            return tuples[i:]
    return tuples


def build_fault_result(exc_info, msg=None, invoke_id=None):
    import traceback

    etype, value, tb = exc_info
    return make_error(
        msg if msg else str(value),
        etype.__name__,
        traceback.format_list(_user_frames(tb)),
        invoke_id,
    )


def _replace_line_indentation(line, indent_char, new_indent_char):
    n = len(line) - len(line.lstrip(indent_char))
    return new_indent_char * n + line[n:]


def log_error(error_result, log_sink):
    if _LOG_FORMAT_JSON:
        record = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time())), "level": "ERROR"}
        record.update(error_result)
        log_sink.log_error([to_json(record)])
        return

    description = "[ERROR]"
    error_type = error_result.get("errorType")
    if error_type:
        description += " " + error_type
    error_message = error_result.get("errorMessage")
    if error_message:
        if error_type:
            description += ":"
        description += " " + error_message

    lines = [description]
    stack_trace = error_result.get("stackTrace")
    if stack_trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack_trace:
            if element == "":
                lines.append("")
            else:
                for trace_line in element.splitlines():
                    lines.append(_replace_line_indentation(trace_line, " ", ERROR_LOG_IDENT))
    log_sink.log_error(lines)


# --------------------------------------------------------------------------------------------
# Logging: sinks, handler, formatters
# --------------------------------------------------------------------------------------------

_LOG_FORMAT_JSON = (os.environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"


def _log_level_from_env(value):
    return {None: "", "TRACE": "DEBUG"}.get(value, value).upper()


def _norm_level(levelno):
    return min(50, max(0, levelno)) // 10 * 10


def _frame_types(base):
    # base 0xA55A0002 (JSON) / 0xA55A0003 (text); the level lives in bits 2-4.
    return dict(
        (lvl, (base | mask).to_bytes(4, "big"))
        for lvl, mask in ((0, 0x00), (10, 0x08), (20, 0x0C), (30, 0x10), (40, 0x14), (50, 0x18))
    )


class StandardLogSink(object):
    """Writes log records to stdout, one record per line (record-internal newlines become \\r)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def log(self, msg, frame_type=None):
        sys.stdout.write(msg)

    def log_error(self, message_lines):
        sys.stdout.write(ERROR_LOG_LINE_TERMINATE.join(message_lines) + "\n")


class FramedTelemetryLogSink(object):
    """The platform's framed log protocol on $_LAMBDA_TELEMETRY_LOG_FD:
    4-byte frame type, 4-byte length, 8-byte timestamp (us), message; all big-endian."""

    def __init__(self, fd):
        self.fd = int(fd)
        self.text_frames = _frame_types(0xA55A0003)
        self.json_frames = _frame_types(0xA55A0002)

    def __enter__(self):
        self.file = os.fdopen(self.fd, "wb", 0)
        return self

    def __exit__(self, *exc):
        self.file.close()

    def log(self, msg, frame_type=None):
        encoded = msg.encode("utf8")
        ts = time.time_ns() // 1000
        self.file.write(
            (frame_type or self.text_frames[0]) + len(encoded).to_bytes(4, "big") + ts.to_bytes(8, "big") + encoded
        )

    def log_error(self, message_lines):
        frames = self.json_frames if _LOG_FORMAT_JSON else self.text_frames
        self.log("\n".join(message_lines), frame_type=frames[40])


def create_log_sink():
    fd = os.environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    if fd is not None:
        return FramedTelemetryLogSink(fd)
    return StandardLogSink()


class LambdaLoggerHandler(logging.Handler):
    def __init__(self, log_sink, typed_frames=False):
        logging.Handler.__init__(self)
        self.log_sink = log_sink
        self._text_frames = _frame_types(0xA55A0003) if typed_frames else None

    def emit(self, record):
        msg = self.format(record)
        if self._text_frames is None:
            self.log_sink.log(msg)
        else:
            self.log_sink.log(
                msg,
                frame_type=getattr(record, "_frame_type", None) or self._text_frames.get(_norm_level(record.levelno)),
            )


class LambdaLoggerFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _GLOBAL_AWS_REQUEST_ID or ""
        record.tenant_id = _GLOBAL_TENANT_ID
        return True


_RESERVED_FIELDS = frozenset(
    (
        "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info",
        "exc_text", "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread",
        "threadName", "processName", "process", "aws_request_id", "tenant_id", "_frame_type",
    )
)


class JsonFormatter(logging.Formatter):
    """AWS_LAMBDA_LOG_FORMAT=JSON record format."""

    def __init__(self):
        logging.Formatter.__init__(self, datefmt="%Y-%m-%dT%H:%M:%SZ")
        self._encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
        self._frames = _frame_types(0xA55A0002)

    def format(self, record):
        record.levelno = _norm_level(record.levelno)
        record.levelname = logging.getLevelName(record.levelno)
        record._frame_type = self._frames.get(record.levelno, self._frames[0])
        exc = record.exc_info
        if exc:
            import traceback

            stack, etype, emsg = traceback.format_tb(exc[2]), exc[0].__name__, str(exc[1])
            location = "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
        else:
            stack = etype = emsg = location = None
        msg = record.msg if isinstance(record.msg, dict) and not record.args else record.getMessage()
        result = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": msg,
            "logger": record.name,
            "stackTrace": stack,
            "errorType": etype,
            "errorMessage": emsg,
            "requestId": getattr(record, "aws_request_id", None),
            "location": location,
        }
        if getattr(record, "tenant_id", None) is not None:
            result["tenantId"] = record.tenant_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED_FIELDS and key not in result:
                result[key] = value
        return self._encode(dict((k, v) for k, v in result.items() if v is not None)) + "\n"


def _setup_logging(log_sink):
    log_level = _log_level_from_env(os.environ.get("AWS_LAMBDA_LOG_LEVEL"))
    logging.Formatter.converter = time.gmtime
    logger = logging.getLogger()
    handler = LambdaLoggerHandler(log_sink, typed_frames=bool(_LOG_FORMAT_JSON or log_level))
    if _LOG_FORMAT_JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
                "%Y-%m-%dT%H:%M:%S",
            )
        )
    if log_level in getattr(logging, "_nameToLevel", {}):
        logger.setLevel(log_level)
    handler.addFilter(LambdaLoggerFilter())
    logger.addHandler(handler)


def _unbuffered(stream):
    return bool(getattr(stream, "write_through", False)) and type(getattr(stream, "buffer", None)).__name__ == "FileIO"


class Unbuffered(object):
    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __getattr__(self, attr):
        return getattr(self.stream, attr)

    def write(self, msg):
        self.stream.write(msg)
        self.stream.flush()

    def writelines(self, msgs):
        self.stream.writelines(msgs)
        self.stream.flush()


# --------------------------------------------------------------------------------------------
# Handler resolution and the invoke loop
# --------------------------------------------------------------------------------------------


def _get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, str(e)))

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                BUILT_IN_MODULE_CONFLICT, "Cannot use built-in module {} as a handler module".format(modname)
            )
        import importlib

        m = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(IMPORT_MODULE_ERROR, "Unable to import module '{}': {}".format(modname, str(e)))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            USER_CODE_SYNTAX_ERROR, "Syntax error in module '{}': {}".format(modname, str(e)), trace
        )

    try:
        return getattr(m, fname)
    except AttributeError:
        raise FaultException(HANDLER_NOT_FOUND, "Handler '{}' missing on module '{}'".format(fname, modname), None)


def _update_xray_env(trace_id):
    if trace_id is not None:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    elif "_X_AMZN_TRACE_ID" in os.environ:
        del os.environ["_X_AMZN_TRACE_ID"]


def handle_event_request(client, request_handler, headers, body, log_sink):
    invoke_id = headers.get("lambda-runtime-aws-request-id")
    error_result = None
    try:
        try:
            deadline = int(headers.get("lambda-runtime-deadline-ms") or 0)
        except ValueError:
            deadline = 0
        context = create_lambda_context(
            headers.get("lambda-runtime-client-context"),
            headers.get("lambda-runtime-cognito-identity"),
            deadline,
            invoke_id,
            headers.get("lambda-runtime-invoked-function-arn"),
            headers.get("lambda-runtime-aws-tenant-id"),
        )
        event = _unmarshal_request(body, headers.get("content-type"))
        response = request_handler(event, context)
        result, content_type = _marshal_response(response)
    except FaultException as e:
        error_result = make_error(e.msg, e.exception_type, e.trace, invoke_id)
    except Exception:
        error_result = build_fault_result(sys.exc_info(), None, invoke_id)

    if error_result is not None:
        log_error(error_result, log_sink)
        _flush_output()
        client.post_invocation_error(invoke_id, error_result)
    else:
        _flush_output()
        client.post_invocation_result(invoke_id, result, content_type)


def _set_default_sys_path(task_root):
    """AWS's order: task root, then (when PYTHONPATH is unset) the layer directories
    /opt/python/lib/pythonX.Y/site-packages and /opt/python, then everything else."""
    pythonpath_set = "PYTHONPATH" in os.environ
    opt_site = "/opt/python/lib/python%d.%d/site-packages" % sys.version_info[:2]
    if not pythonpath_set:
        sys.path.insert(0, "/opt/python")
        sys.path.insert(0, opt_site)
    sys.path.insert(0, task_root)
    # Like AWS: the task root and layer directories are site dirs, so their .pth files apply.
    site = sys.modules.get("site")
    if site is not None:
        try:
            site.addsitedir(task_root)
            if not pythonpath_set:
                site.addsitedir(opt_site)
                site.addsitedir("/opt/python")
        except Exception:
            pass
    if not pythonpath_set and os.environ.get("LAMBDA_RUNTIME_DIR"):
        os.environ["PYTHONPATH"] = os.environ["LAMBDA_RUNTIME_DIR"]


def run(handler, client):
    global _GLOBAL_AWS_REQUEST_ID, _GLOBAL_TENANT_ID

    # Under `python3 -u` the streams already write straight through to the pipe.
    if not _unbuffered(sys.stdout):
        sys.stdout = Unbuffered(sys.stdout)
    if not _unbuffered(sys.stderr):
        sys.stderr = Unbuffered(sys.stderr)

    with create_log_sink() as log_sink:
        error_result = None
        try:
            _setup_logging(log_sink)
            request_handler = _get_handler(handler)
        except FaultException as e:
            error_result = make_error(e.msg, e.exception_type, e.trace)
        except Exception:
            error_result = build_fault_result(sys.exc_info(), None)

        if error_result is not None:
            logging.warning(LAMBDA_UNHANDLED_EXCEPTION_WARNING)
            log_error(error_result, log_sink)
            _flush_output()
            client.post_init_error(error_result)
            sys.exit(1)

        while True:
            headers, body = client.wait_next_invocation()
            _GLOBAL_AWS_REQUEST_ID = headers.get("lambda-runtime-aws-request-id")
            _GLOBAL_TENANT_ID = headers.get("lambda-runtime-aws-tenant-id")
            _update_xray_env(headers.get("lambda-runtime-trace-id"))
            handle_event_request(client, request_handler, headers, body, log_sink)


def main():
    api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not api:
        sys.stderr.write("AWS_LAMBDA_RUNTIME_API is not set\n")
        sys.exit(1)
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    handler = os.environ.get("_HANDLER")
    if handler is None:
        handler = sys.argv[1] if len(sys.argv) > 1 else ""
    _set_default_sys_path(task_root)
    run(handler, RuntimeClient(api))


if __name__ == "__main__":
    main()
