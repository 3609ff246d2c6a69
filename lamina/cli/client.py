"""boto3 clients pointed at the Lamina server, with the dev credentials unless others are set."""
from __future__ import annotations

import json
from typing import Any

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from lamina.settings import client_settings


def lambda_client(timeout_s: int = 900) -> Any:
    s = client_settings()
    return boto3.client("lambda", endpoint_url=s.endpoint, region_name=s.region, aws_access_key_id=s.access_key,
                        aws_secret_access_key=s.secret_key,
                        config=Config(read_timeout=timeout_s, retries={"max_attempts": 0}))


def admin_call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Lamina's own operations, signed with SigV4 like any AWS call."""
    s = client_settings()
    url = s.endpoint.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else b""
    req = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(s.access_key, s.secret_key), "lambda", s.region).add_auth(req)
    resp = httpx.request(method, url, content=data, headers=dict(req.headers.items()), timeout=30)
    if resp.status_code >= 400:
        raise RuntimeError(f"{resp.status_code} {resp.headers.get('x-amzn-ErrorType')}: {resp.text}")
    return resp.json() if resp.content else None
