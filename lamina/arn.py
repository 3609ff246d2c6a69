"""Parse and format Lambda ARNs and function references with qualifiers."""
from __future__ import annotations

import re
from dataclasses import dataclass

_FUNCTION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"function:(?P<name>[a-zA-Z0-9-_]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?$"
)
_PARTIAL_ARN = re.compile(
    r"^(?P<account>\d{12}):function:(?P<name>[a-zA-Z0-9-_]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?$")
_NAME = re.compile(r"^[a-zA-Z0-9-_]+$")
_NAME_WITH_QUALIFIER = re.compile(r"^(?P<name>[a-zA-Z0-9-_]+):(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+)$")
_LAYER_VERSION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"layer:(?P<name>[a-zA-Z0-9-_]+):(?P<version>-?[0-9]+)$"
)


@dataclass(frozen=True)
class FunctionRef:
    """A function named by the caller: name, optional account/region from an ARN, optional qualifier."""

    name: str
    qualifier: str | None = None
    account: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class LayerVersionRef:
    name: str
    version: int
    account: str
    region: str


def parse_function_ref(value: str) -> FunctionRef | None:
    """Accept a name, `name:qualifier`, a partial ARN or a full ARN; None when it is none of them."""
    if _NAME.match(value):
        return FunctionRef(value)
    for pattern in (_FUNCTION_ARN, _PARTIAL_ARN, _NAME_WITH_QUALIFIER):
        m = pattern.match(value)
        if m:
            groups = m.groupdict()
            return FunctionRef(groups["name"], groups.get("qualifier"), groups.get("account"), groups.get("region"))
    return None


def parse_layer_version_arn(value: str) -> LayerVersionRef | None:
    m = _LAYER_VERSION_ARN.match(value)
    if not m:
        return None
    return LayerVersionRef(m["name"], int(m["version"]), m["account"], m["region"])


def function_arn(region: str, account: str, name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def layer_arn(region: str, account: str, name: str, version: int | None = None) -> str:
    base = f"arn:aws:lambda:{region}:{account}:layer:{name}"
    return f"{base}:{version}" if version is not None else base
