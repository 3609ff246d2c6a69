"""Checking and unpacking uploaded zip archives: size limits, zip bombs, paths that escape."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from lamina import limits
from lamina.errors import InvalidParameterValueException, RequestEntityTooLargeException
from lamina.model.function import Code
from lamina.store.blobs import BlobStore

_BAD_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
_CHUNK = 1 << 16


def _unzipped_too_large(limit: int) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"Unzipped size must be smaller than {limit} bytes")


def _safe_member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or name.startswith("/"):
        raise InvalidParameterValueException(_BAD_ZIP)
    return path


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_symlink_target(member: PurePosixPath, target: str) -> None:
    """A link may point anywhere inside the tree, never outside it."""
    if target.startswith("/"):
        raise InvalidParameterValueException(_BAD_ZIP)
    depth = len(member.parts) - 1
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise InvalidParameterValueException(_BAD_ZIP)


def open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        if archive.testzip() is not None:
            raise InvalidParameterValueException(_BAD_ZIP)
        return archive
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise InvalidParameterValueException(_BAD_ZIP) from e


def check_zip(data: bytes, budget: int = limits.UNZIPPED_MAX_BYTES) -> int:
    """Validate an archive without writing it anywhere; returns its unzipped size."""
    if len(data) > limits.ZIPPED_MAX_BYTES:
        raise RequestEntityTooLargeException(f"Zipped size must be smaller than {limits.ZIPPED_MAX_BYTES} bytes")
    archive = open_zip(data)
    total = 0
    for info in archive.infolist():
        member = _safe_member_path(info.filename)
        if _is_symlink(info):
            _check_symlink_target(member, archive.read(info).decode("utf-8", "replace"))
        total += _stream_size(archive, info, budget - total)
    return total


def _stream_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, remaining: int) -> int:
    """Count real decompressed bytes (headers can lie), stopping as soon as the budget is gone."""
    size = 0
    with archive.open(info) as src:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > remaining:
                raise _unzipped_too_large(limits.UNZIPPED_MAX_BYTES)
    return size


def extract(data: bytes, dest: Path) -> None:
    """Unpack a checked archive into dest, keeping exec bits and in-tree symlinks."""
    archive = open_zip(data)
    for info in archive.infolist():
        member = _safe_member_path(info.filename)
        target = dest.joinpath(*member.parts)
        mode = (info.external_attr >> 16) & 0o777
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if _is_symlink(info):
            os.symlink(archive.read(info).decode(), target)
            continue
        with archive.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
        target.chmod((mode | 0o444) if mode else 0o644)
    for path in [dest, *dest.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def ingest(blobs: BlobStore, data: bytes, budget: int = limits.UNZIPPED_MAX_BYTES) -> Code:
    """Check, store and unpack a zip; the returned Code names it for every later use."""
    unzipped = check_zip(data, budget)
    digest = blobs.put(data)
    blobs.tree(digest, lambda tmp: extract(data, tmp))
    return Code(sha256_b64=base64.b64encode(hashlib.sha256(data).digest()).decode(), size=len(data),
                blob_hash=digest, unzipped_size=unzipped)


def decode_zip_field(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise InvalidParameterValueException(_BAD_ZIP) from e
