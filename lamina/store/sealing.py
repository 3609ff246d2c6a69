"""Encrypts secrets at rest (environment variables, secret keys) with a per-installation key."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_key_file(cls, path: Path) -> Sealer:
        """Load the key, creating it (mode 600) on first use."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
                f.flush()
                os.fsync(f.fileno())
        return cls(path.read_bytes().strip())

    @classmethod
    def ephemeral(cls) -> Sealer:
        return cls(Fernet.generate_key())

    def seal(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def unseal(self, token: bytes) -> bytes:
        return self._fernet.decrypt(token)
