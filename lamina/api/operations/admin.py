"""Lamina's own operations (not AWS's): access keys and the host report. Operator account only."""
from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response

from lamina.api.call import Call, empty_reply, json_reply
from lamina.control.identities import OPERATOR_ACCOUNT
from lamina.errors import AccessDeniedException, ResourceNotFoundException


class CreateKeyIn(BaseModel):
    Account: str


def _operator_only(call: Call) -> None:
    if call.scope.account != OPERATOR_ACCOUNT:
        raise AccessDeniedException("Only the operator account manages access keys.")


async def list_keys(call: Call) -> Response:
    _operator_only(call)
    keys = [{"AccessKeyId": k.access_key_id, "Account": k.account, "Created": k.created}
            for k in call.services.identities.list()]
    return json_reply({"Keys": keys})


async def create_key(call: Call) -> Response:
    _operator_only(call)
    key = call.services.identities.create(call.json(CreateKeyIn).Account)
    return json_reply({"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret,
                       "Account": key.account}, 201)


async def delete_key(call: Call) -> Response:
    _operator_only(call)
    call.services.identities.delete(call.path["AccessKeyId"])
    return empty_reply(204)


async def download_code(call: Call) -> Response:
    digest = call.path["Digest"].removesuffix(".zip")
    if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise ResourceNotFoundException("The resource you requested does not exist.")
    path = call.services.blobs.zip_path(digest)
    if not path.exists():
        raise ResourceNotFoundException("The resource you requested does not exist.")
    return Response(path.read_bytes(), media_type="application/zip")


async def host_report(call: Call) -> Response:
    return json_reply(call.services.host_report())


