"""Code and layer archives kept content-addressed by sha256, each unpacked once."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


class BlobStore:
    def __init__(self, root: Path) -> None:
        self._zips = root / "blobs"
        self._trees = root / "trees"
        self._zips.mkdir(parents=True, exist_ok=True)
        self._trees.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        """Store bytes durably (write, fsync, rename) and return their hex sha256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.zip_path(digest)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self._zips, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        return digest

    def zip_path(self, digest: str) -> Path:
        return self._zips / f"{digest}.zip"

    def read(self, digest: str) -> bytes:
        return self.zip_path(digest).read_bytes()

    def tree_path(self, digest: str) -> Path:
        return self._trees / digest

    def tree(self, digest: str, unpack: Callable[[Path], None]) -> Path:
        """The unpacked tree for a blob; `unpack(tmpdir)` fills it the first time, then it is renamed in."""
        target = self._trees / digest
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(dir=self._trees, prefix=".tmp-"))
        try:
            unpack(tmp)
            tmp.chmod(0o755)
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target
