"""boto3 clients pointed at the Lamina server, with the dev credentials unless others are set."""
from __future__ import annotations

import json
import os
from typing import Any

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from lamina.settings import DEV_ACCESS_KEY, DEV_SECRET_KEY, cli_endpoint


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _credentials() -> Credentials:
    return Credentials(os.environ.get("AWS_ACCESS_KEY_ID", DEV_ACCESS_KEY),
                       os.environ.get("AWS_SECRET_ACCESS_KEY", DEV_SECRET_KEY))


def lambda_client(endpoint: str | None = None, timeout_s: int = 900) -> Any:
    creds = _credentials()
    return boto3.client("lambda", endpoint_url=endpoint or cli_endpoint(), region_name=_region(),
                        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                        config=Config(read_timeout=timeout_s, retries={"max_attempts": 0}))


def admin_call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Lamina's own operations, signed with SigV4 like any AWS call."""
    url = cli_endpoint().rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else b""
    req = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(_credentials(), "lambda", _region()).add_auth(req)
    resp = httpx.request(method, url, content=data, headers=dict(req.headers.items()), timeout=30)
    if resp.status_code >= 400:
        raise RuntimeError(f"{resp.status_code} {resp.headers.get('x-amzn-ErrorType')}: {resp.text}")
    return resp.json() if resp.content else None
