"""Request checks with AWS's exact error types and messages."""
from __future__ import annotations

import json
import re
from typing import Any

from lamina import limits
from lamina.errors import InvalidParameterValueException, ValidationException
from lamina.runtimes.catalog import AWS_RUNTIMES, DEPRECATED

FUNCTION_NAME_PATTERN = (r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?"
                         r"([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?")
ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
HANDLER_PATTERN = r"[^\s]+"
LAYER_PATTERN = r"arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+"
ENV_KEY_PATTERN = r"[a-zA-Z]([a-zA-Z0-9_])+"
RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})


class Violations:
    """Collects constraint failures and raises them as one AWS ValidationException."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, value: Any, field: str, constraint: str) -> None:
        self._items.append(f"Value '{value}' at '{field}' failed to satisfy constraint: {constraint}")

    def raise_if_any(self) -> None:
        if self._items:
            n = len(self._items)
            noun = "error" if n == 1 else "errors"
            raise ValidationException(f"{n} validation {noun} detected: " + "; ".join(self._items))


def check_range(v: Violations, value: int | None, field: str, low: int, high: int) -> None:
    if value is None:
        return
    if value < low:
        v.add(value, field, f"Member must have value greater than or equal to {low}")
    elif value > high:
        v.add(value, field, f"Member must have value less than or equal to {high}")


def check_pattern(v: Violations, value: str | None, field: str, pattern: str, max_len: int | None = None) -> None:
    if value is None:
        return
    if max_len is not None and len(value) > max_len:
        v.add(value, field, f"Member must have length less than or equal to {max_len}")
    elif not re.fullmatch(pattern, value):
        v.add(value, field, f"Member must satisfy regular expression pattern: {pattern}")


def check_function_name_param(value: str) -> None:
    """A FunctionName in the path: ValidationException on a bad pattern or length."""
    v = Violations()
    check_pattern(v, value, "functionName", FUNCTION_NAME_PATTERN, limits.FUNCTION_ARN_MAX_CHARS)
    v.raise_if_any()


def check_runtime(runtime: str | None, runnable: list[str]) -> None:
    if runtime is None:
        return
    if runtime not in AWS_RUNTIMES:
        raise InvalidParameterValueException(
            f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(sorted(runnable))}] or be a valid ARN")
    if runtime in DEPRECATED:
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
            "functions. We recommend you use a supported runtime while creating or updating functions.")
    if runtime not in runnable:
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is not supported by this Lamina installation. "
            f"Supported runtimes: [{', '.join(runnable)}]")


def check_environment(variables: dict[str, str] | None) -> None:
    if variables is None:
        return
    measured = json.dumps(variables, separators=(",", ":"))
    if len(measured.encode()) > limits.ENVIRONMENT_MAX_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables you "
            f"have provided exceeded the 4KB limit. String measured: {measured}")
    v = Violations()
    for key in variables:
        if not re.fullmatch(ENV_KEY_PATTERN, key):
            v.add(key, "environment.variables", f"Member must satisfy regular expression pattern: {ENV_KEY_PATTERN}")
    v.raise_if_any()
    reserved = sorted(set(variables) & RESERVED_ENV)
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables you have "
            "provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {', '.join(reserved)}")


def check_architectures(v: Violations, archs: list[str] | None) -> None:
    if archs is None:
        return
    if len(archs) != 1:
        v.add(archs, "architectures", "Member must have length less than or equal to 1")
    for arch in archs:
        if arch not in ("x86_64", "arm64"):
            v.add(archs, "architectures", "Member must satisfy enum value set: [x86_64, arm64]")


def check_layers_format(v: Violations, layers: list[str] | None) -> None:
    for arn in layers or []:
        if len(arn) > 140 or not re.fullmatch(LAYER_PATTERN, arn):
            v.add(layers, "layers", "[Member must have length less than or equal to 140, Member must have length "
                  "greater than or equal to 1, Member must satisfy regular expression pattern: "
                  f"{LAYER_PATTERN}, Member must not be null]")
            return
    if layers is not None and len(layers) > limits.LAYERS_MAX:
        raise InvalidParameterValueException("Cannot reference more than 5 layers.")
