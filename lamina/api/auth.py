"""AWS Signature Version 4 verification of incoming requests."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import quote, unquote

from lamina import limits
from lamina.errors import InvalidSignatureException, MissingAuthenticationTokenException, UnrecognizedClientException

ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                  "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")


@dataclass(frozen=True)
class Caller:
    access_key_id: str
    account: str
    region: str
    service: str


@dataclass(frozen=True)
class SignedRequest:
    method: str
    raw_path: str                 # as sent, still percent-encoded
    raw_query: str
    headers: Mapping[str, str]    # lower-case names
    body: bytes


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str


def _parse_authorization(value: str) -> _Authorization:
    if not value.startswith(ALGORITHM + " "):
        raise InvalidSignatureException("Authorization header requires the AWS4-HMAC-SHA256 algorithm.")
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1:].split(","):
        key, _, val = part.strip().partition("=")
        fields[key] = val
    try:
        access_key, date, region, service, terminator = fields["Credential"].split("/")
        if terminator != "aws4_request":
            raise ValueError(terminator)
        return _Authorization(access_key, date, region, service, fields["SignedHeaders"].split(";"),
                              fields["Signature"])
    except (KeyError, ValueError) as e:
        raise InvalidSignatureException(f"Authorization header is malformed: {value[:80]}") from e


def _canonical_query(raw_query: str) -> str:
    pairs = []
    for item in filter(None, raw_query.split("&")):
        key, _, val = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(val), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _canonical_headers(headers: Mapping[str, str], names: list[str]) -> str:
    return "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in names)


def canonical_request(req: SignedRequest, signed_headers: list[str]) -> str:
    payload_hash = req.headers.get("x-amz-content-sha256")
    if payload_hash != "UNSIGNED-PAYLOAD":
        payload_hash = hashlib.sha256(req.body).hexdigest()
    return "\n".join([
        req.method, quote(req.raw_path or "/", safe="/~"), _canonical_query(req.raw_query),
        _canonical_headers(req.headers, signed_headers), ";".join(signed_headers), payload_hash,
    ])


@functools.lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Derived once per key, day, region and service, as SigV4 intends."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, amz_date: str, auth_scope: tuple[str, str, str], canonical: str) -> str:
    date, region, service = auth_scope
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    return hmac.new(signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()


def _check_clock(amz_date: str, now: dt.datetime) -> None:
    try:   # fixed-width YYYYMMDDTHHMMSSZ; strptime is slow for something parsed on every request
        if len(amz_date) != 16 or amz_date[8] != "T" or amz_date[15] != "Z":
            raise ValueError(amz_date)
        stamp = dt.datetime(int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]), int(amz_date[9:11]),
                            int(amz_date[11:13]), int(amz_date[13:15]), tzinfo=dt.timezone.utc)
    except ValueError as e:
        raise InvalidSignatureException(f"Invalid X-Amz-Date: {amz_date}") from e
    skew = dt.timedelta(seconds=limits.SIGV4_MAX_SKEW_S)
    def fmt(t: dt.datetime) -> str:
        return t.strftime(_AMZ_DATE)

    if stamp < now - skew:
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than {fmt(now - skew)} ({fmt(now)} - 5 min.)")
    if stamp > now + skew:
        raise InvalidSignatureException(
            f"Signature not yet current: {amz_date} is still later than {fmt(now + skew)} ({fmt(now)} + 5 min.)")


def verify(req: SignedRequest, lookup: Callable[[str], tuple[str, str] | None],
           now: dt.datetime | None = None) -> Caller:
    """Check a request's SigV4 signature; `lookup(access_key_id)` gives (secret, account) or None."""
    header = req.headers.get("authorization")
    if not header:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    auth = _parse_authorization(header)
    found = lookup(auth.access_key_id)
    if found is None:
        raise UnrecognizedClientException("The security token included in the request is invalid.")
    secret, account = found
    amz_date = req.headers.get("x-amz-date", "")
    _check_clock(amz_date, now or dt.datetime.now(dt.timezone.utc))
    canonical = canonical_request(req, auth.signed_headers)
    expected = signature(secret, amz_date, (auth.date, auth.region, auth.service), canonical)
    if not hmac.compare_digest(expected, auth.signature):
        raise InvalidSignatureException(_BAD_SIGNATURE)
    return Caller(auth.access_key_id, account, auth.region, auth.service)
