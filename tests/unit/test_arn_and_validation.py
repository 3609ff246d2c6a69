from __future__ import annotations

import pytest

from lamina.arn import function_arn, parse_function_ref, parse_layer_version_arn
from lamina.control import validation as val
from lamina.errors import InvalidParameterValueException, ValidationException


@pytest.mark.parametrize("value,name,qualifier,account", [
    ("fn", "fn", None, None),
    ("fn:prod", "fn", "prod", None),
    ("fn:$LATEST", "fn", "$LATEST", None),
    ("123456789012:function:fn", "fn", None, "123456789012"),
    ("arn:aws:lambda:us-east-1:123456789012:function:fn:7", "fn", "7", "123456789012"),
])
def test_function_refs(value: str, name: str, qualifier: str | None, account: str | None) -> None:
    ref = parse_function_ref(value)
    assert ref is not None and (ref.name, ref.qualifier, ref.account) == (name, qualifier, account)


@pytest.mark.parametrize("value", ["", "a b", "arn:aws:s3:::bucket", "fn:a:b"])
def test_bad_function_refs(value: str) -> None:
    assert parse_function_ref(value) is None


def test_arn_formatting_and_layers() -> None:
    assert function_arn("eu-west-1", "123456789012", "f", "1") == "arn:aws:lambda:eu-west-1:123456789012:function:f:1"
    ref = parse_layer_version_arn("arn:aws:lambda:us-east-1:123456789012:layer:deps:3")
    assert ref is not None and (ref.name, ref.version) == ("deps", 3)


def test_violations_message_shape() -> None:
    v = val.Violations()
    val.check_range(v, 64, "memorySize", 128, 10240)
    with pytest.raises(ValidationException) as e:
        v.raise_if_any()
    assert str(e.value) == ("1 validation error detected: Value '64' at 'memorySize' failed to satisfy constraint: "
                            "Member must have value greater than or equal to 128")


def test_two_violations_are_counted() -> None:
    v = val.Violations()
    val.check_range(v, 0, "timeout", 1, 900)
    val.check_pattern(v, "r1", "role", val.ROLE_PATTERN)
    with pytest.raises(ValidationException, match="^2 validation errors detected"):
        v.raise_if_any()


def test_reserved_environment_keys() -> None:
    with pytest.raises(InvalidParameterValueException, match="Reserved keys used in this request: AWS_REGION"):
        val.check_environment({"AWS_REGION": "x"})
    val.check_environment({"MY_VAR": "x"})


def test_function_name_path_param_length() -> None:
    with pytest.raises(ValidationException):
        val.check_function_name_param("a" * 141)
