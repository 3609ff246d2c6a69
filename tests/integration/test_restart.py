"""kill -9 the server, start it again: every function, tag, version and alias is there unchanged."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROLE, LaminaServer, make_zip


def test_state_survives_kill_9(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data").start()
    try:
        lam = srv.client()
        code = make_zip({"app.py": "def handler(e, c):\n    return {'v': 1}\n"})
        lam.create_function(FunctionName="keep", Runtime="python3.12", Handler="app.handler", Role=ROLE,
                            Code={"ZipFile": code}, Environment={"Variables": {"SECRET_ONE": "s1"}},
                            Tags={"team": "core"})
        lam.get_waiter("function_active_v2").wait(FunctionName="keep", WaiterConfig={"Delay": 1})
        lam.publish_version(FunctionName="keep")
        lam.create_alias(FunctionName="keep", Name="live", FunctionVersion="1")
        before = lam.get_function(FunctionName="keep")
        srv.kill9()
        srv.start()
        lam = srv.client()
        after = lam.get_function(FunctionName="keep")
        for field in ("RevisionId", "CodeSha256", "CodeSize", "Environment", "LastModified", "Handler"):
            assert after["Configuration"][field] == before["Configuration"][field]
        assert after["Tags"] == {"team": "core"}
        assert lam.get_alias(FunctionName="keep", Name="live")["FunctionVersion"] == "1"
        assert [v["Version"] for v in lam.list_versions_by_function(FunctionName="keep")["Versions"]] == ["$LATEST", "1"]
        resp = lam.invoke(FunctionName="keep", Qualifier="live")
        assert json.loads(resp["Payload"].read()) == {"v": 1}
        db = (tmp_path / "data" / "lamina.db").read_bytes()
        assert b"SECRET_ONE" not in db      # environment variables are encrypted at rest
    finally:
        srv.stop()


def test_cli_deploy_list_invoke(tmp_path: Path) -> None:
    srv = LaminaServer(tmp_path / "data").start()
    try:
        env = {"LAMINA_ENDPOINT": srv.endpoint, "PATH": "/usr/bin:/bin"}
        folder = tmp_path / "fn"
        folder.mkdir()
        (folder / "lambda_function.py").write_text("def handler(e, c):\n    return {'cli': e.get('x')}\n")
        lamina = [sys.executable, "-m", "lamina.cli.main"]
        out = subprocess.run([*lamina, "deploy", str(folder), "--name", "clifn"], env=env, capture_output=True,
                             text=True, check=True)
        assert "created" in out.stdout and "clifn" in out.stdout
        listed = subprocess.run([*lamina, "functions"], env={**env, "COLUMNS": "200"}, capture_output=True,
                                text=True, check=True)
        assert "clifn" in listed.stdout and "python3.12" in listed.stdout
        invoked = subprocess.run([*lamina, "invoke", "clifn", "--payload", '{"x": 7}'], env=env,
                                 capture_output=True, text=True, check=True)
        assert json.loads(invoked.stdout) == {"cli": 7}
        doctor = subprocess.run([*lamina, "doctor"], env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
                                check=True)
        assert "Isolation (server)" in doctor.stdout and "python3.12" in doctor.stdout
        boto = srv.client()
        boto.publish_version(FunctionName="clifn")
        boto.create_alias(FunctionName="clifn", Name="live", FunctionVersion="1")
        boto.publish_layer_version(LayerName="clilayer", Content={"ZipFile": make_zip({"python/m.py": ""})},
                                   CompatibleRuntimes=["python3.12"])
        wide = {**env, "COLUMNS": "200"}
        for command, expected in ((["versions", "clifn"], "$LATEST"), (["aliases", "clifn"], "live"),
                                  (["layers"], "clilayer")):
            shown = subprocess.run([*lamina, *command], env=wide, capture_output=True, text=True, check=True)
            assert expected in shown.stdout
        again = subprocess.run([*lamina, "deploy", str(folder), "--name", "clifn"], env=env, capture_output=True,
                               text=True, check=True)
        assert "updated" in again.stdout
    finally:
        srv.stop()


def test_refuses_public_address_with_only_dev_keys(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "lamina.cli.main", "serve", "--host", "0.0.0.0", "--port", "0",
                          "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "only the public dev keys exist" in out.stderr


def test_keys_create_an_account_that_sees_only_its_own_functions(tmp_path: Path) -> None:
    import boto3
    import pytest
    from botocore.config import Config
    srv = LaminaServer(tmp_path / "data").start()
    try:
        env = {"LAMINA_ENDPOINT": srv.endpoint, "PATH": "/usr/bin:/bin"}
        made = subprocess.run([sys.executable, "-m", "lamina.cli.main", "keys", "create", "--account",
                               "123456789012"], env=env, capture_output=True, text=True, check=True)
        key = json.loads(made.stdout)
        dev = srv.client()
        dev.create_function(FunctionName="dev-only", Runtime="python3.12", Handler="a.b", Role=ROLE,
                            Code={"ZipFile": make_zip({"a.py": "def b(e, c):\n    return 1\n"})})
        other = boto3.client("lambda", endpoint_url=srv.endpoint, region_name="us-east-1",
                             aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                             config=Config(retries={"max_attempts": 0}))
        assert other.list_functions()["Functions"] == []
        with pytest.raises(other.exceptions.ResourceNotFoundException):
            other.get_function(FunctionName="dev-only")
        created = other.create_function(FunctionName="mine", Runtime="python3.12", Handler="a.b", Role=ROLE,
                                        Code={"ZipFile": make_zip({"a.py": "x = 1\n"})})
        assert ":123456789012:function:mine" in created["FunctionArn"]
        listed = subprocess.run([sys.executable, "-m", "lamina.cli.main", "keys", "list"],
                                env={**env, "COLUMNS": "200"}, capture_output=True, text=True, check=True)
        assert key["AccessKeyId"] in listed.stdout
        subprocess.run([sys.executable, "-m", "lamina.cli.main", "keys", "delete", key["AccessKeyId"]], env=env,
                       capture_output=True, text=True, check=True)
        with pytest.raises(other.exceptions.ClientError) as e:
            other.list_functions()
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        srv.stop()
