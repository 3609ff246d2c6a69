"""Versions are immutable, aliases route by weight, layers merge in order at /opt."""
from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.helpers import make_zip

VERSIONED = '''
import os, uuid
ENV = uuid.uuid4().hex
def handler(event, context):
    return {"code": "CODE_TAG", "var": os.environ.get("STAGE"), "version": context.function_version,
            "arn": context.invoked_function_arn, "env": ENV}
'''


def code(tag: str) -> bytes:
    return make_zip({"lambda_function.py": VERSIONED.replace("CODE_TAG", tag)})


def invoke(lam: Any, name: str, qualifier: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    kwargs = {"Qualifier": qualifier} if qualifier else {}
    resp = lam.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    return resp, json.loads(resp["Payload"].read())


def wait_updated(lam: Any, name: str) -> None:
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})


@pytest.fixture
def versioned(lam: Any, make_function: Any, fn_name: str) -> str:
    make_function({"lambda_function.py": VERSIONED.replace("CODE_TAG", "v1")},
                  Environment={"Variables": {"STAGE": "one"}})
    return fn_name


def test_publish_is_immutable_and_idempotent(lam: Any, versioned: str) -> None:
    name = versioned
    v1 = lam.publish_version(FunctionName=name)
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201 and v1["Version"] == "1"
    assert v1["FunctionArn"].endswith(f"{name}:1")
    assert lam.publish_version(FunctionName=name)["Version"] == "1"      # nothing changed: same version
    lam.update_function_code(FunctionName=name, ZipFile=code("v2"))
    wait_updated(lam, name)
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"STAGE": "two"}})
    wait_updated(lam, name)
    resp, old = invoke(lam, name, "1")
    assert (old["code"], old["var"], old["version"]) == ("v1", "one", "1")
    assert resp["ExecutedVersion"] == "1"
    _, new = invoke(lam, name)
    assert (new["code"], new["var"], new["version"]) == ("v2", "two", "$LATEST")
    assert new["env"] != old["env"]                                       # never the same environment
    v2 = lam.update_function_code(FunctionName=name, ZipFile=code("v3"), Publish=True)
    assert v2["Version"] == "2" and v2["FunctionArn"].endswith(":2")
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert versions == ["$LATEST", "1", "2"]
    assert all(v["FunctionArn"].endswith(":" + v["Version"])
               for v in lam.list_versions_by_function(FunctionName=name)["Versions"])
    assert lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]["Environment"]["Variables"] == \
        {"STAGE": "one"}
    lam.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, name, "1")


def test_create_with_publish(lam: Any, make_function: Any, fn_name: str) -> None:
    cfg = make_function(Publish=True)
    assert cfg["Version"] == "1" and not cfg["FunctionArn"].endswith(":1")


def test_alias_crud_and_errors(lam: Any, versioned: str) -> None:
    name = versioned
    lam.publish_version(FunctionName=name)
    alias = lam.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    assert alias["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert alias["AliasArn"].endswith(f"{name}:prod") and alias["Description"] == ""
    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        lam.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    assert e.value.response["Error"]["Message"].startswith("Alias already exists:")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.create_alias(FunctionName=name, Name="nope", FunctionVersion="10")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_alias(FunctionName=name, Name="bad", FunctionVersion="1",
                         RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})
    assert "already included in routing configuration" in e.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_alias(FunctionName=name, Name="bad", FunctionVersion="$LATEST",
                         RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})
    lam.update_function_code(FunctionName=name, ZipFile=code("v2"), Publish=True)
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_alias(FunctionName=name, Name="prod", FunctionVersion="2", RevisionId="stale")
    updated = lam.update_alias(FunctionName=name, Name="prod", FunctionVersion="2", RevisionId=alias["RevisionId"])
    assert updated["FunctionVersion"] == "2" and updated["RevisionId"] != alias["RevisionId"]
    lam.create_alias(FunctionName=name, Name="old", FunctionVersion="1")
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="1")["Aliases"]] == ["old"]
    assert {a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]} == {"old", "prod"}
    cfg = lam.get_function_configuration(FunctionName=name, Qualifier="prod")
    assert cfg["FunctionArn"].endswith(":prod") and cfg["Version"] == "2"
    resp, body = invoke(lam, name, "prod")
    assert body["arn"].endswith(":prod") and body["version"] == "2" and resp["ExecutedVersion"] == "2"
    assert lam.delete_alias(FunctionName=name, Name="prod")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.delete_alias(FunctionName=name, Name="prod")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        invoke(lam, name, "prod")


def test_weighted_routing_is_90_10(lam: Any, versioned: str) -> None:
    name = versioned
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=code("v2"), Publish=True)
    lam.create_alias(FunctionName=name, Name="canary", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    n = 200
    hits = {"1": 0, "2": 0}
    for _ in range(n):
        resp, body = invoke(lam, name, "canary")
        assert resp["ExecutedVersion"] == body["version"]
        assert body["code"] == ("v1" if body["version"] == "1" else "v2")
        hits[body["version"]] += 1
    # 90/10 gives a mean of 20 on version 2 (sd 4.2); 50/50 would give 100. Six sigma apart either way.
    assert abs(hits["2"] - 0.1 * n) < 6 * math.sqrt(n * 0.1 * 0.9)
    assert hits["2"] > 0


LAYER_A = {"python/shared_lib.py": "WHO = 'layer-a'\n", "python/only_a.py": "X = 1\n", "bin/tool": "a"}
LAYER_B = {"python/shared_lib.py": "WHO = 'layer-b'\n"}
USES_LAYERS = '''
import os, shared_lib, only_a
def handler(event, context):
    return {"who": shared_lib.WHO, "x": only_a.X, "opt": sorted(os.listdir("/opt")),
            "path_has_bin": "/opt/bin" in os.environ["PATH"]}
'''


def test_layers_merge_in_order_and_are_importable(lam: Any, make_function: Any, fn_name: str) -> None:
    a = lam.publish_layer_version(LayerName=fn_name + "-a", Content={"ZipFile": make_zip(LAYER_A)},
                                  CompatibleRuntimes=["python3.12"])
    b = lam.publish_layer_version(LayerName=fn_name + "-b", Content={"ZipFile": make_zip(LAYER_B)})
    assert a["ResponseMetadata"]["HTTPStatusCode"] == 201 and a["Version"] == 1
    assert a["LayerVersionArn"] == a["LayerArn"] + ":1"
    cfg = make_function({"lambda_function.py": USES_LAYERS}, Layers=[a["LayerVersionArn"], b["LayerVersionArn"]])
    assert [layer["Arn"] for layer in cfg["Layers"]] == [a["LayerVersionArn"], b["LayerVersionArn"]]
    body = invoke(lam, fn_name)[1]
    assert body == {"who": "layer-b", "x": 1, "opt": ["bin", "python"], "path_has_bin": True}
    lam.update_function_configuration(FunctionName=fn_name, Layers=[b["LayerVersionArn"], a["LayerVersionArn"]])
    wait_updated(lam, fn_name)
    assert invoke(lam, fn_name)[1]["who"] == "layer-a"


def test_layer_versions_api_and_errors(lam: Any, fn_name: str, make_function: Any) -> None:
    layer = fn_name + "-lib"
    v1 = lam.publish_layer_version(LayerName=layer, Content={"ZipFile": make_zip(LAYER_B)}, Description="one")
    v2 = lam.publish_layer_version(LayerName=layer, Content={"ZipFile": make_zip(LAYER_A)})
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=layer)["LayerVersions"]] == [2, 1]
    assert lam.get_layer_version(LayerName=layer, VersionNumber=1)["Description"] == "one"
    assert lam.get_layer_version_by_arn(Arn=v2["LayerVersionArn"])["Version"] == 2
    listed = {x["LayerName"]: x for x in lam.list_layers()["Layers"]}
    assert listed[layer]["LatestMatchingVersion"]["Version"] == 2
    perm = lam.add_layer_version_permission(LayerName=layer, VersionNumber=1, StatementId="all",
                                            Action="lambda:GetLayerVersion", Principal="*")
    assert perm["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(perm["Statement"])["Principal"] == "*"
    assert json.loads(lam.get_layer_version_policy(LayerName=layer, VersionNumber=1)["Policy"])["Statement"][0]["Sid"] \
        == "all"
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_layer_version_permission(LayerName=layer, VersionNumber=1, StatementId="all",
                                         Action="lambda:GetLayerVersion", Principal="*")
    lam.remove_layer_version_permission(LayerName=layer, VersionNumber=1, StatementId="all")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version_policy(LayerName=layer, VersionNumber=1)
    assert lam.delete_layer_version(LayerName=layer, VersionNumber=1)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.delete_layer_version(LayerName=layer, VersionNumber=2)["ResponseMetadata"]["HTTPStatusCode"] == 204
    v3 = lam.publish_layer_version(LayerName=layer, Content={"ZipFile": make_zip(LAYER_B)})
    assert v3["Version"] == 3                                          # numbers are never reused
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        make_function(Layers=[v1["LayerVersionArn"]])
    assert e.value.response["Error"]["Message"] == f"Layer version {v1['LayerVersionArn']} does not exist."
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        make_function(Layers=[v3["LayerVersionArn"], v3["LayerVersionArn"][:-1] + "4"])
    assert "Two different versions of the same layer" in e.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        make_function(Layers=[v3["LayerVersionArn"]] * 6)


def _zeros_zip(name: str, mb: int) -> bytes:
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name, "w", force_zip64=True) as f:
            for _ in range(mb):
                f.write(b"\0" * (1 << 20))
    return buf.getvalue()


def test_unzipped_limit_counts_function_and_layers(lam: Any, fn_name: str) -> None:
    layer = lam.publish_layer_version(LayerName=fn_name + "-big", Content={"ZipFile": _zeros_zip("python/big", 200)})
    base = {"FunctionName": fn_name, "Runtime": "python3.12", "Handler": "a.b",
            "Role": "arn:aws:iam::000000000000:role/r", "Layers": [layer["LayerVersionArn"]]}
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.create_function(Code={"ZipFile": _zeros_zip("big.bin", 60)}, **base)
    assert e.value.response["Error"]["Message"] == "Unzipped size must be smaller than 262144000 bytes"
    assert lam.create_function(Code={"ZipFile": _zeros_zip("small.bin", 10)}, **base)["State"] == "Pending"
