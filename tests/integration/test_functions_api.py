"""The functions control plane, driven over HTTP with stock boto3."""
from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from typing import Any

import botocore.exceptions
import pytest
from botocore.config import Config

from tests.helpers import ROLE, LaminaServer, make_zip

UUID = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")


def error_of(exc: botocore.exceptions.ClientError) -> tuple[str, int, str]:
    r = exc.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def create(lam: Any, name: str, **kwargs: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"FunctionName": name, "Runtime": "python3.12", "Handler": "app.handler", "Role": ROLE,
                              "Code": {"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})}}
    params.update(kwargs)
    return dict(lam.create_function(**params))


def test_create_returns_201_pending_with_aws_shape(lam: Any, fn_name: str) -> None:
    data = make_zip({"app.py": "def handler(e, c):\n    return 1\n"})
    resp = lam.create_function(FunctionName=fn_name, Runtime="python3.12", Handler="app.handler", Role=ROLE,
                               Code={"ZipFile": data}, Environment={"Variables": {"AB": "1"}})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert UUID.match(resp["ResponseMetadata"]["RequestId"])
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{fn_name}"
    assert resp["State"] == "Pending" and resp["StateReasonCode"] == "Creating"
    assert resp["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert resp["CodeSize"] == len(data)
    assert (resp["MemorySize"], resp["Timeout"], resp["Version"]) == (128, 3, "$LATEST")
    assert resp["EphemeralStorage"] == {"Size": 512} and resp["Architectures"] == ["x86_64"]
    assert resp["Environment"] == {"Variables": {"AB": "1"}}
    assert resp["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{fn_name}"}
    assert UUID.match(resp["RevisionId"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$", resp["LastModified"])
    lam.get_waiter("function_active_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1})
    got = lam.get_function(FunctionName=fn_name)
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["LastUpdateStatus"] == "Successful"
    assert got["Code"]["RepositoryType"] == "S3"


def test_qualified_and_unqualified_arns(lam: Any, fn_name: str) -> None:
    create(lam, fn_name)
    base = f"arn:aws:lambda:us-east-1:000000000000:function:{fn_name}"
    assert lam.get_function_configuration(FunctionName=fn_name)["FunctionArn"] == base
    assert lam.get_function_configuration(FunctionName=fn_name, Qualifier="$LATEST")["FunctionArn"] == base + ":$LATEST"
    assert lam.get_function(FunctionName=base)["Configuration"]["FunctionName"] == fn_name
    assert lam.get_function(FunctionName=f"{fn_name}:$LATEST")["Configuration"]["FunctionArn"] == base + ":$LATEST"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.get_function(FunctionName=f"{base}:$LATEST", Qualifier="1")
    assert error_of(e.value)[0] == "InvalidParameterValueException"


def test_get_unknown_function_is_404_with_aws_message(lam: Any) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
        lam.get_function(FunctionName="does-not-exist")
    code, status, message = error_of(e.value)
    assert status == 404
    assert message == "Function not found: arn:aws:lambda:us-east-1:000000000000:function:does-not-exist"
    assert e.value.response["Type"] == "User"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ResourceNotFoundException"


def test_duplicate_create_conflicts(lam: Any, fn_name: str) -> None:
    create(lam, fn_name)
    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        create(lam, fn_name)
    assert error_of(e.value) == ("ResourceConflictException", 409, f"Function already exist: {fn_name}")


def test_list_functions_paginates_with_marker(lam: Any, fn_name: str) -> None:
    names = [f"{fn_name}-{i}" for i in range(5)]
    for n in names:
        create(lam, n)
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = lam.list_functions(**kwargs)
        pages += 1
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert set(names) <= set(seen) and len(seen) == len(set(seen)) and pages >= 3
    assert all(f["FunctionArn"].endswith(f["FunctionName"]) for f in lam.list_functions()["Functions"])


def test_update_configuration_and_revision_ids(lam: Any, fn_name: str, make_function: Any) -> None:
    first = make_function()
    before = lam.get_function_configuration(FunctionName=fn_name)["RevisionId"]
    resp = lam.update_function_configuration(FunctionName=fn_name, MemorySize=256, Timeout=10,
                                             Description="d", Environment={"Variables": {"KK": "v"}})
    assert resp["LastUpdateStatus"] == "InProgress" and resp["RevisionId"] != before
    assert (resp["MemorySize"], resp["Timeout"], resp["Description"]) == (256, 10, "d")
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1})
    cfg = lam.get_function_configuration(FunctionName=fn_name)
    assert cfg["LastUpdateStatus"] == "Successful" and cfg["Environment"]["Variables"] == {"KK": "v"}
    assert cfg["Runtime"] == first["Runtime"]
    with pytest.raises(lam.exceptions.PreconditionFailedException) as e:
        lam.update_function_configuration(FunctionName=fn_name, Timeout=5, RevisionId=before)
    assert error_of(e.value)[1] == 412
    assert "does not match the latest Revision Id" in error_of(e.value)[2]
    ok = lam.update_function_configuration(FunctionName=fn_name, Timeout=5, RevisionId=cfg["RevisionId"])
    assert ok["Timeout"] == 5


def test_update_code_changes_sha_and_size(lam: Any, fn_name: str, make_function: Any) -> None:
    make_function()
    data = make_zip({"lambda_function.py": "def handler(e, c):\n    return 'v2'\n" + "#" * 100})
    resp = lam.update_function_code(FunctionName=fn_name, ZipFile=data)
    assert resp["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert resp["CodeSize"] == len(data)
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1})
    assert lam.get_function(FunctionName=fn_name)["Configuration"]["CodeSha256"] == resp["CodeSha256"]


def test_delete_answers_204_then_404(lam: Any, fn_name: str) -> None:
    create(lam, fn_name)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.delete_function(FunctionName=fn_name, Qualifier="$LATEST")
    assert error_of(e.value)[2] == "$LATEST version cannot be deleted without deleting the function."
    assert lam.delete_function(FunctionName=fn_name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName=fn_name)


@pytest.mark.parametrize("kwargs,field", [
    ({"MemorySize": 64}, "memorySize"), ({"MemorySize": 10241}, "memorySize"), ({"Timeout": 0}, "timeout"),
    ({"Timeout": 901}, "timeout"), ({"EphemeralStorage": {"Size": 100}}, "ephemeralStorage.size"),
    ({"Role": "r1"}, "role"), ({"Description": "x" * 257}, "description"),
    ({"Architectures": ["x86_64", "arm64"]}, "architectures"), ({"Layers": ["not-an-arn"]}, "layers"),
])
def test_schema_violations_are_validation_exceptions(server: LaminaServer, fn_name: str, kwargs: dict[str, Any],
                                                     field: str) -> None:
    lam = server.client(parameter_validation=False)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(lam, fn_name, **kwargs)
    code, status, message = error_of(e.value)
    assert (code, status) == ("ValidationException", 400)
    assert f"at '{field}' failed to satisfy constraint" in message
    assert "Type" not in e.value.response


def test_runtime_errors(lam: Any, fn_name: str) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, fn_name, Runtime="non-existent-runtime")
    assert "Value non-existent-runtime at 'runtime' failed to satisfy constraint: Member must satisfy enum" \
        in error_of(e.value)[2]
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, fn_name, Runtime="python3.7")
    assert error_of(e.value)[2].startswith("The runtime parameter of python3.7 is no longer supported")


def test_environment_over_4kb_is_rejected(lam: Any, fn_name: str) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, fn_name, Environment={"Variables": {"BIG": "x" * 4100}})
    assert "exceeded the 4KB limit. String measured: " in error_of(e.value)[2]


def test_bad_archives_are_rejected(lam: Any, fn_name: str) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, fn_name, Code={"ZipFile": b"this is not a zip"})
    assert error_of(e.value)[2] == "Could not unzip uploaded file. Please check your file, then try to upload again."
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        create(lam, fn_name, Code={"ZipFile": make_zip({"../escape.py": "x"})})
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, fn_name, Code={"S3Bucket": "bucket", "S3Key": "key.zip"})
    assert "ZipFile" in error_of(e.value)[2]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=fn_name)


def test_zip_bomb_is_stopped_while_extracting(lam: Any, fn_name: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("zeros.bin", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(251):
                f.write(chunk)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        create(lam, fn_name, Code={"ZipFile": buf.getvalue()})
    assert error_of(e.value)[2] == "Unzipped size must be smaller than 262144000 bytes"


def test_zipped_over_50mb_is_413(server: LaminaServer, fn_name: str) -> None:
    import os
    lam = server.client()
    data = make_zip({"blob.bin": os.urandom(52_500_000)})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(lam, fn_name, Code={"ZipFile": data})
    assert error_of(e.value) == ("RequestEntityTooLargeException", 413,
                                 "Zipped size must be smaller than 52428800 bytes")


def test_tags(lam: Any, fn_name: str) -> None:
    arn = create(lam, fn_name, Tags={"team": "a"})["FunctionArn"]
    rev = lam.get_function_configuration(FunctionName=fn_name)["RevisionId"]
    assert lam.tag_resource(Resource=arn, Tags={"env": "dev"})["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn)["Tags"] == {"team": "a", "env": "dev"}
    assert lam.get_function(FunctionName=fn_name)["Tags"] == {"team": "a", "env": "dev"}
    assert lam.get_function_configuration(FunctionName=fn_name)["RevisionId"] != rev
    lam.untag_resource(Resource=arn, TagKeys=["team"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"env": "dev"}
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
        lam.tag_resource(Resource=arn + ":1", Tags={"a": "b"})
    assert "Tags on function aliases and versions are not supported" in error_of(e.value)[2]
    lam.delete_function(FunctionName=fn_name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.list_tags(Resource=arn)


def test_account_settings(lam: Any, fn_name: str) -> None:
    before = lam.get_account_settings()
    create(lam, fn_name)
    after = lam.get_account_settings()
    assert set(after["AccountLimit"]) >= {"CodeSizeUnzipped", "CodeSizeZipped", "ConcurrentExecutions",
                                          "TotalCodeSize", "UnreservedConcurrentExecutions"}
    assert after["AccountLimit"]["CodeSizeZipped"] == 52428800
    assert after["AccountUsage"]["FunctionCount"] == before["AccountUsage"]["FunctionCount"] + 1
    assert after["AccountUsage"]["TotalCodeSize"] > before["AccountUsage"]["TotalCodeSize"]


def test_every_response_has_request_id_and_errors_carry_error_type(server: LaminaServer) -> None:
    import httpx
    r = httpx.get(server.endpoint + "/2015-03-31/functions")
    assert r.status_code == 403
    assert r.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert r.json() == {"message": "Missing Authentication Token"}
    assert UUID.match(r.headers["x-amzn-RequestId"])


def test_unknown_key_and_wrong_secret(server: LaminaServer) -> None:
    import boto3
    for key, secret, expected in [("nobody", "x", "UnrecognizedClientException"),
                                  ("test", "wrong", "InvalidSignatureException")]:
        client = boto3.client("lambda", endpoint_url=server.endpoint, region_name="us-east-1",
                              aws_access_key_id=key, aws_secret_access_key=secret,
                              config=Config(retries={"max_attempts": 0}))
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.list_functions()
        assert error_of(e.value)[:2] == (expected, 403)


def test_concurrent_updates_with_one_revision_id_let_exactly_one_win(lam: Any, fn_name: str,
                                                                      make_function: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor
    make_function()
    revision = lam.get_function_configuration(FunctionName=fn_name)["RevisionId"]

    def update(i: int) -> str:
        try:
            lam.update_function_configuration(FunctionName=fn_name, Description=f"writer-{i}", RevisionId=revision)
            return "won"
        except botocore.exceptions.ClientError as e:
            return str(e.response["Error"]["Code"])

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(update, range(8)))
    assert outcomes.count("won") == 1
    assert set(outcomes) - {"won"} <= {"PreconditionFailedException", "ResourceConflictException"}
    winner = outcomes.index("won")
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1})
    assert lam.get_function_configuration(FunctionName=fn_name)["Description"] == f"writer-{winner}"
