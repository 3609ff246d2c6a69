"""SigV4 verification against requests signed by botocore's own signer."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.api import auth
from lamina.errors import InvalidSignatureException, MissingAuthenticationTokenException, UnrecognizedClientException

KEYS = {"AKID": ("secret", "111111111111")}


def signed(secret: str = "secret", body: bytes = b'{"a": 1}', url: str | None = None) -> auth.SignedRequest:
    url = url or "http://127.0.0.1:9000/2015-03-31/functions/my-fn%3A%24LATEST/invocations?Qualifier=%24LATEST"
    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("AKID", secret), "lambda", "eu-west-1").add_auth(req)
    prepared = req.prepare()
    parts = urlsplit(prepared.url)
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = parts.netloc
    return auth.SignedRequest("POST", parts.path, parts.query, headers, body)


def test_valid_signature_names_caller_and_region() -> None:
    caller = auth.verify(signed(), KEYS.get)
    assert (caller.account, caller.region, caller.service) == ("111111111111", "eu-west-1", "lambda")


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignatureException, match="does not match"):
        auth.verify(signed(secret="other"), KEYS.get)


def test_unknown_key() -> None:
    with pytest.raises(UnrecognizedClientException):
        auth.verify(signed(), lambda _: None)


def test_tampered_body() -> None:
    req = signed()
    tampered = auth.SignedRequest(req.method, req.raw_path, req.raw_query, req.headers, b'{"a": 2}')
    with pytest.raises(InvalidSignatureException):
        auth.verify(tampered, KEYS.get)


def test_tampered_query() -> None:
    req = signed()
    with pytest.raises(InvalidSignatureException):
        auth.verify(auth.SignedRequest(req.method, req.raw_path, "Qualifier=1", req.headers, req.body), KEYS.get)


def test_skewed_clock_both_ways() -> None:
    req = signed()
    stamp = dt.datetime.strptime(req.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    with pytest.raises(InvalidSignatureException, match="Signature expired"):
        auth.verify(req, KEYS.get, now=stamp + dt.timedelta(minutes=6))
    with pytest.raises(InvalidSignatureException, match="Signature not yet current"):
        auth.verify(req, KEYS.get, now=stamp - dt.timedelta(minutes=6))
    assert auth.verify(req, KEYS.get, now=stamp + dt.timedelta(minutes=4)).account == "111111111111"


def test_missing_authorization() -> None:
    req = signed()
    headers = {k: v for k, v in req.headers.items() if k != "authorization"}
    with pytest.raises(MissingAuthenticationTokenException):
        auth.verify(auth.SignedRequest(req.method, req.raw_path, req.raw_query, headers, req.body), KEYS.get)
