"""The store's rules: compare-and-swap, version numbering, sealing, durability across reopen."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lamina.model.function import LATEST, Code, FunctionConfig, FunctionVersion
from lamina.store.base import Conflict, FunctionKey
from lamina.store.sealing import Sealer
from lamina.store.sql import memory_store, sqlite_store

CODE = Code("sha", 10, "ab" * 32, 20)


def version(name: str = "f", env: dict[str, str] | None = None) -> FunctionVersion:
    cfg = FunctionConfig(runtime="python3.12", role="arn:aws:iam::000000000000:role/r", handler="a.b", code=CODE,
                         environment=env)
    return FunctionVersion("000000000000", "us-east-1", name, LATEST, cfg, "rev-1", "now")


def test_create_twice_conflicts() -> None:
    store = memory_store()
    store.create_function(version(), "now", {})
    with pytest.raises(Conflict):
        store.create_function(version(), "now", {})


def test_compare_and_swap_rejects_a_stale_revision() -> None:
    store = memory_store()
    v = version()
    store.create_function(v, "now", {})
    store.replace_version(replace(v, revision_id="rev-2"), expected_revision="rev-1")
    with pytest.raises(Conflict):
        store.replace_version(replace(v, revision_id="rev-3"), expected_revision="rev-1")
    got = store.get_version(FunctionKey("000000000000", "us-east-1", "f"), LATEST)
    assert got is not None and got.revision_id == "rev-2"


def test_version_numbers_count_up_and_are_not_reused() -> None:
    store = memory_store()
    v = version()
    key = FunctionKey(v.account, v.region, v.name)
    store.create_function(v, "now", {})
    one = store.publish_version(key, lambda n: replace(v, version=n))
    store.delete_version(key, one.version)
    two = store.publish_version(key, lambda n: replace(v, version=n))
    assert (one.version, two.version) == ("1", "2")


def test_environment_is_sealed_on_disk_and_survives_reopen(tmp_path: Path) -> None:
    sealer = Sealer.from_key_file(tmp_path / "k")
    store = sqlite_store(tmp_path / "db.sqlite", sealer)
    store.create_function(version(env={"SECRET": "hunter2-value"}), "now", {"t": "1"})
    store.close()
    assert b"hunter2-value" not in (tmp_path / "db.sqlite").read_bytes()
    wal = tmp_path / "db.sqlite-wal"
    assert not wal.exists() or b"hunter2-value" not in wal.read_bytes()
    reopened = sqlite_store(tmp_path / "db.sqlite", Sealer.from_key_file(tmp_path / "k"))
    got = reopened.get_version(FunctionKey("000000000000", "us-east-1", "f"), LATEST)
    assert got is not None and got.config.environment == {"SECRET": "hunter2-value"}
    assert reopened.get_tags(FunctionKey("000000000000", "us-east-1", "f")) == {"t": "1"}
