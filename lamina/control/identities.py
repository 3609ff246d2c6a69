"""Accounts and their access keys: who may sign requests, and for which account."""
from __future__ import annotations

import secrets
import string

from lamina.control.clock import last_modified
from lamina.errors import InvalidParameterValueException, ResourceNotFoundException
from lamina.settings import DEV_ACCESS_KEY, DEV_ACCOUNT, DEV_SECRET_KEY
from lamina.store.base import AccessKey, Store

OPERATOR_ACCOUNT = DEV_ACCOUNT


class IdentityService:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[str, str]] = {}

    def ensure_dev_key(self) -> None:
        if self._store.get_access_key(DEV_ACCESS_KEY) is None:
            self._store.put_access_key(AccessKey(DEV_ACCESS_KEY, DEV_SECRET_KEY, DEV_ACCOUNT, last_modified()))

    def only_dev_keys(self) -> bool:
        return all(k.access_key_id == DEV_ACCESS_KEY for k in self._store.list_access_keys())

    def lookup(self, access_key_id: str) -> tuple[str, str] | None:
        """(secret, account) for a key; cached, since every request asks."""
        hit = self._cache.get(access_key_id)
        if hit is None:
            key = self._store.get_access_key(access_key_id)
            if key is None:
                return None
            hit = self._cache[access_key_id] = (key.secret, key.account)
        return hit

    def create(self, account: str) -> AccessKey:
        if not (len(account) == 12 and account.isdigit()):
            raise InvalidParameterValueException(f"Account id must be 12 digits: {account}")
        alphabet = string.ascii_uppercase + string.digits
        key_id = "LKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
        key = AccessKey(key_id, secrets.token_urlsafe(30), account, last_modified())
        self._store.put_access_key(key)
        return key

    def list(self) -> list[AccessKey]:
        return self._store.list_access_keys()

    def delete(self, access_key_id: str) -> None:
        self._cache.pop(access_key_id, None)
        if not self._store.delete_access_key(access_key_id):
            raise ResourceNotFoundException(f"Access key not found: {access_key_id}")
