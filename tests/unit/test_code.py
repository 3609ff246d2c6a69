"""Hostile and valid archives, built in the test."""
from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from lamina.control import code
from lamina.errors import InvalidParameterValueException, RequestEntityTooLargeException
from lamina.store.blobs import BlobStore
from tests.helpers import make_zip


def zip_with_symlink(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
        zf.writestr("ok.py", "x = 1\n")
    return buf.getvalue()


@pytest.mark.parametrize("member", ["../evil.py", "/abs/evil.py", "a/../../evil.py", "a\\..\\evil.py"])
def test_entries_escaping_the_tree_are_refused(member: str) -> None:
    with pytest.raises(InvalidParameterValueException):
        code.check_zip(make_zip({member: "x"}))


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "a/../../../outside"])
def test_symlinks_pointing_outside_are_refused(target: str) -> None:
    with pytest.raises(InvalidParameterValueException):
        code.check_zip(zip_with_symlink("dir/link", target))


def test_symlink_inside_the_tree_is_kept(tmp_path: Path) -> None:
    data = zip_with_symlink("dir/link", "../ok.py")
    code.check_zip(data)
    code.extract(data, tmp_path)
    assert (tmp_path / "dir" / "link").is_symlink()
    assert (tmp_path / "dir" / "link").read_text() == "x = 1\n"


def test_not_a_zip() -> None:
    with pytest.raises(InvalidParameterValueException, match="Could not unzip"):
        code.check_zip(b"PK\x03\x04 broken")


def test_bomb_counts_real_bytes_not_headers() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * 5_000_000)
    with pytest.raises(InvalidParameterValueException, match="Unzipped size"):
        code.check_zip(buf.getvalue(), budget=1_000_000)


def test_zipped_limit() -> None:
    with pytest.raises(RequestEntityTooLargeException):
        code.check_zip(b"\0" * (52_428_800 + 1))


def test_ingest_is_content_addressed_and_keeps_exec_bits(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = make_zip({"bootstrap": "#!/bin/sh\n", "lib/x.txt": "x"}, modes={"bootstrap": 0o755})
    first = code.ingest(blobs, data)
    again = code.ingest(blobs, data)
    assert first == again and first.size == len(data) and first.unzipped_size == len("#!/bin/sh\n") + 1
    tree = blobs.tree_path(first.blob_hash)
    assert (tree / "bootstrap").stat().st_mode & 0o111
    assert (tree / "lib" / "x.txt").read_text() == "x"
