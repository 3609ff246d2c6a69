"""Store over SQLAlchemy Core: SQLite in WAL mode by default, in-memory SQLite for unit tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from lamina.model.function import LATEST, FunctionConfig, FunctionVersion, State, UpdateStatus
from lamina.store import schema as t
from lamina.store.base import AccessKey, Conflict, FunctionKey
from lamina.store.sealing import Sealer


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")     # a committed function survives kill -9 and power loss
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def sqlite_store(path: Path, sealer: Sealer) -> SqlStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _sqlite_pragmas)
    return SqlStore(engine, sealer)


def memory_store() -> SqlStore:
    """Same code and semantics as the default store, kept in memory: for unit tests."""
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    return SqlStore(engine, Sealer.ephemeral())


def _version_doc(v: FunctionVersion) -> str:
    return json.dumps({
        "config": v.config.to_doc(), "last_modified": v.last_modified, "state": v.state.value,
        "state_reason": v.state_reason, "state_reason_code": v.state_reason_code,
        "last_update_status": v.last_update_status.value if v.last_update_status else None,
        "code_revision": v.code_revision, "extra": v.extra,
    })


class SqlStore:
    """One process owns a data directory, so reads on the invoke path (a version, an alias) are
    served from memory once loaded; every write here drops what it may have changed."""

    def __init__(self, engine: Engine, sealer: Sealer) -> None:
        self._engine = engine
        self._sealer = sealer
        self._versions: dict[tuple[FunctionKey, str], FunctionVersion | None] = {}
        self._aliases: dict[tuple[FunctionKey, str], dict[str, Any] | None] = {}
        t.metadata.create_all(engine)
        self._check_schema_version()

    @property
    def engine(self) -> Engine:
        return self._engine

    def _check_schema_version(self) -> None:
        with self._engine.begin() as c:
            row = c.execute(select(t.meta.c.value).where(t.meta.c.key == "schema_version")).first()
            if row is None:
                c.execute(insert(t.meta).values(key="schema_version", value=str(t.SCHEMA_VERSION)))
            elif int(row[0]) > t.SCHEMA_VERSION:
                raise RuntimeError(f"store schema {row[0]} is newer than this Lamina ({t.SCHEMA_VERSION})")

    # -- rows <-> values ---------------------------------------------------------------
    def _seal_env(self, env: dict[str, str] | None) -> bytes | None:
        return None if env is None else self._sealer.seal(json.dumps(env).encode())

    def _load_version(self, row: Any) -> FunctionVersion:
        doc = json.loads(row.doc)
        env = None if row.environment is None else json.loads(self._sealer.unseal(row.environment))
        status = doc["last_update_status"]
        return FunctionVersion(
            account=row.account, region=row.region, name=row.name, version=row.version,
            config=FunctionConfig.from_doc(doc["config"], env), revision_id=row.revision_id,
            last_modified=doc["last_modified"], state=State(doc["state"]), state_reason=doc["state_reason"],
            state_reason_code=doc["state_reason_code"],
            last_update_status=UpdateStatus(status) if status else None,
            code_revision=doc["code_revision"], extra=doc["extra"],
        )

    def _version_values(self, v: FunctionVersion) -> dict[str, Any]:
        return {"account": v.account, "region": v.region, "name": v.name, "version": v.version,
                "doc": _version_doc(v), "environment": self._seal_env(v.config.environment),
                "revision_id": v.revision_id}

    def _forget(self, key: FunctionKey) -> None:
        for cache in (self._versions, self._aliases):
            for k in [k for k in cache if k[0] == key]:
                del cache[k]

    @staticmethod
    def _fn_where(table: Any, key: FunctionKey, name_col: str = "name") -> Any:
        return (table.c.account == key.account) & (table.c.region == key.region) & (table.c[name_col] == key.name)

    # -- functions ---------------------------------------------------------------------
    def create_function(self, version: FunctionVersion, created: str, tags: dict[str, str]) -> None:
        self._forget(FunctionKey(version.account, version.region, version.name))
        try:
            with self._engine.begin() as c:
                c.execute(insert(t.functions).values(account=version.account, region=version.region,
                                                     name=version.name, created=created,
                                                     tags=json.dumps(tags), next_version=1))
                c.execute(insert(t.function_versions).values(**self._version_values(version)))
        except IntegrityError as e:
            raise Conflict(version.name) from e

    def get_version(self, key: FunctionKey, version: str) -> FunctionVersion | None:
        cached = (key, version)
        if cached in self._versions:
            return self._versions[cached]
        with self._engine.connect() as c:
            row = c.execute(select(t.function_versions).where(
                self._fn_where(t.function_versions, key) & (t.function_versions.c.version == version))).first()
        found = None if row is None else self._load_version(row)
        self._versions[cached] = found
        return found

    def list_versions(self, key: FunctionKey) -> list[FunctionVersion]:
        with self._engine.connect() as c:
            rows = c.execute(select(t.function_versions).where(self._fn_where(t.function_versions, key))).all()
        versions = [self._load_version(r) for r in rows]
        return sorted(versions, key=lambda v: -1 if v.version == LATEST else int(v.version))

    def list_latest(self, account: str, region: str) -> list[FunctionVersion]:
        fv = t.function_versions
        with self._engine.connect() as c:
            rows = c.execute(select(fv).where((fv.c.account == account) & (fv.c.region == region)
                                              & (fv.c.version == LATEST)).order_by(fv.c.name)).all()
        return [self._load_version(r) for r in rows]

    def replace_version(self, new: FunctionVersion, expected_revision: str | None) -> None:
        """Compare-and-swap on RevisionId: the update lands only if nobody changed the row meanwhile."""
        fv = t.function_versions
        key = FunctionKey(new.account, new.region, new.name)
        where = self._fn_where(fv, key) & (fv.c.version == new.version)
        if expected_revision is not None:
            where = where & (fv.c.revision_id == expected_revision)
        values = self._version_values(new)
        self._forget(key)
        with self._engine.begin() as c:
            if c.execute(update(fv).where(where).values(**values)).rowcount != 1:
                raise Conflict(new.name)

    def publish_version(self, key: FunctionKey, make: Callable[[str], FunctionVersion]) -> FunctionVersion:
        self._forget(key)
        with self._engine.begin() as c:
            row = c.execute(select(t.functions.c.next_version).where(self._fn_where(t.functions, key))).first()
            if row is None:
                raise Conflict(key.name)
            number = row[0]
            version = make(str(number))
            c.execute(update(t.functions).where(self._fn_where(t.functions, key)).values(next_version=number + 1))
            c.execute(insert(t.function_versions).values(**self._version_values(version)))
        return version

    def delete_function(self, key: FunctionKey) -> bool:
        self._forget(key)
        with self._engine.begin() as c:
            c.execute(delete(t.function_versions).where(self._fn_where(t.function_versions, key)))
            c.execute(delete(t.aliases).where(self._fn_where(t.aliases, key, "function_name")))
            return c.execute(delete(t.functions).where(self._fn_where(t.functions, key))).rowcount == 1

    def delete_version(self, key: FunctionKey, version: str) -> bool:
        fv = t.function_versions
        self._forget(key)
        with self._engine.begin() as c:
            return c.execute(delete(fv).where(self._fn_where(fv, key) & (fv.c.version == version))).rowcount == 1

    def get_tags(self, key: FunctionKey) -> dict[str, str] | None:
        with self._engine.connect() as c:
            row = c.execute(select(t.functions.c.tags).where(self._fn_where(t.functions, key))).first()
        return None if row is None else dict(json.loads(row[0]))

    def set_tags(self, key: FunctionKey, tags: dict[str, str]) -> None:
        with self._engine.begin() as c:
            c.execute(update(t.functions).where(self._fn_where(t.functions, key)).values(tags=json.dumps(tags)))

    # -- aliases -----------------------------------------------------------------------
    def put_alias(self, key: FunctionKey, name: str, doc: dict[str, Any], expected_revision: str | None,
                  create: bool) -> None:
        a = t.aliases
        where = self._fn_where(a, key, "function_name") & (a.c.name == name)
        values = {"doc": json.dumps(doc), "revision_id": doc["revision_id"]}
        self._forget(key)
        with self._engine.begin() as c:
            if create:
                try:
                    c.execute(insert(a).values(account=key.account, region=key.region,
                                               function_name=key.name, name=name, **values))
                except IntegrityError as e:
                    raise Conflict(name) from e
                return
            if expected_revision is not None:
                where = where & (a.c.revision_id == expected_revision)
            if c.execute(update(a).where(where).values(**values)).rowcount != 1:
                raise Conflict(name)

    def get_alias(self, key: FunctionKey, name: str) -> dict[str, Any] | None:
        cached = (key, name)
        if cached not in self._aliases:
            a = t.aliases
            with self._engine.connect() as c:
                row = c.execute(select(a.c.doc).where(self._fn_where(a, key, "function_name")
                                                      & (a.c.name == name))).first()
            self._aliases[cached] = None if row is None else dict(json.loads(row[0]))
        found = self._aliases[cached]
        return None if found is None else dict(found)

    def list_aliases(self, key: FunctionKey) -> list[dict[str, Any]]:
        a = t.aliases
        with self._engine.connect() as c:
            rows = c.execute(select(a.c.doc).where(self._fn_where(a, key, "function_name")).order_by(a.c.name)).all()
        return [dict(json.loads(r[0])) for r in rows]

    def delete_alias(self, key: FunctionKey, name: str) -> bool:
        a = t.aliases
        self._forget(key)
        with self._engine.begin() as c:
            where = self._fn_where(a, key, "function_name") & (a.c.name == name)
            return c.execute(delete(a).where(where)).rowcount == 1

    # -- layers ------------------------------------------------------------------------
    @staticmethod
    def _layer_where(table: Any, account: str, region: str, name: str) -> Any:
        return (table.c.account == account) & (table.c.region == region) & (table.c.name == name)

    def publish_layer_version(self, account: str, region: str, name: str,
                              make: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        where = self._layer_where(t.layers, account, region, name)
        with self._engine.begin() as c:
            row = c.execute(select(t.layers.c.next_version).where(where)).first()
            if row is None:
                c.execute(insert(t.layers).values(account=account, region=region, name=name, next_version=1))
                number = 1
            else:
                number = row[0]
            doc = make(number)
            c.execute(update(t.layers).where(where).values(next_version=number + 1))
            c.execute(insert(t.layer_versions).values(account=account, region=region, name=name,
                                                      version=number, doc=json.dumps(doc)))
        return doc

    def get_layer_version(self, account: str, region: str, name: str, version: int) -> dict[str, Any] | None:
        lv = t.layer_versions
        with self._engine.connect() as c:
            row = c.execute(select(lv.c.doc).where(self._layer_where(lv, account, region, name)
                                                   & (lv.c.version == version))).first()
        return None if row is None else dict(json.loads(row[0]))

    def replace_layer_version(self, account: str, region: str, name: str, version: int,
                              doc: dict[str, Any]) -> None:
        lv = t.layer_versions
        with self._engine.begin() as c:
            c.execute(update(lv).where(self._layer_where(lv, account, region, name) & (lv.c.version == version))
                      .values(doc=json.dumps(doc)))

    def list_layer_versions(self, account: str, region: str, name: str) -> list[dict[str, Any]]:
        lv = t.layer_versions
        with self._engine.connect() as c:
            rows = c.execute(select(lv.c.doc).where(self._layer_where(lv, account, region, name))
                             .order_by(lv.c.version.desc())).all()
        return [dict(json.loads(r[0])) for r in rows]

    def list_layer_names(self, account: str, region: str) -> list[str]:
        lv = t.layer_versions
        with self._engine.connect() as c:
            rows = c.execute(select(lv.c.name).where((lv.c.account == account) & (lv.c.region == region))
                             .distinct().order_by(lv.c.name)).all()
        return [r[0] for r in rows]

    def delete_layer_version(self, account: str, region: str, name: str, version: int) -> bool:
        lv = t.layer_versions
        with self._engine.begin() as c:
            return c.execute(delete(lv).where(self._layer_where(lv, account, region, name)
                                              & (lv.c.version == version))).rowcount == 1

    # -- identities --------------------------------------------------------------------
    def put_access_key(self, key: AccessKey) -> None:
        values = {"secret": self._sealer.seal(key.secret.encode()), "account": key.account, "created": key.created}
        with self._engine.begin() as c:
            if c.execute(update(t.access_keys).where(t.access_keys.c.access_key_id == key.access_key_id)
                         .values(**values)).rowcount == 0:
                c.execute(insert(t.access_keys).values(access_key_id=key.access_key_id, **values))

    def _load_key(self, row: Any) -> AccessKey:
        return AccessKey(row.access_key_id, self._sealer.unseal(row.secret).decode(), row.account, row.created)

    def get_access_key(self, access_key_id: str) -> AccessKey | None:
        with self._engine.connect() as c:
            row = c.execute(select(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id)).first()
        return None if row is None else self._load_key(row)

    def list_access_keys(self) -> list[AccessKey]:
        with self._engine.connect() as c:
            rows = c.execute(select(t.access_keys).order_by(t.access_keys.c.created)).all()
        return [self._load_key(r) for r in rows]

    def delete_access_key(self, access_key_id: str) -> bool:
        with self._engine.begin() as c:
            return c.execute(delete(t.access_keys).where(t.access_keys.c.access_key_id == access_key_id)).rowcount == 1

    def close(self) -> None:
        self._engine.dispose()


