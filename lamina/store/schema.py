"""The store's tables, in SQLAlchemy Core so the same schema serves SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, PrimaryKeyConstraint, String, Table, Text

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))

functions = Table(
    "functions", metadata,
    Column("account", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(64), nullable=False),
    Column("created", String(40), nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Column("next_version", Integer, nullable=False, default=1),
    PrimaryKeyConstraint("account", "region", "name"),
)

function_versions = Table(
    "function_versions", metadata,
    Column("account", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", String(16), nullable=False),
    Column("doc", Text, nullable=False),               # FunctionVersion without the environment
    Column("environment", LargeBinary, nullable=True),  # sealed (encrypted) environment variables
    Column("revision_id", String(36), nullable=False),
    PrimaryKeyConstraint("account", "region", "name", "version"),
)

aliases = Table(
    "aliases", metadata,
    Column("account", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("function_name", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("doc", Text, nullable=False),
    Column("revision_id", String(36), nullable=False),
    PrimaryKeyConstraint("account", "region", "function_name", "name"),
)

layers = Table(
    "layers", metadata,
    Column("account", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(140), nullable=False),
    Column("next_version", Integer, nullable=False, default=1),
    PrimaryKeyConstraint("account", "region", "name"),
)

layer_versions = Table(
    "layer_versions", metadata,
    Column("account", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(140), nullable=False),
    Column("version", Integer, nullable=False),
    Column("doc", Text, nullable=False),
    PrimaryKeyConstraint("account", "region", "name", "version"),
)

access_keys = Table(
    "access_keys", metadata,
    Column("access_key_id", String(128), primary_key=True),
    Column("secret", LargeBinary, nullable=False),     # sealed
    Column("account", String(12), nullable=False),
    Column("created", String(40), nullable=False),
)

# The durable async-invoke queue: claim by visible_at/lease, ack by delete.
events = Table(
    "events", metadata,
    Column("id", String(36), primary_key=True),
    Column("account", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("function_name", String(64), nullable=False),
    Column("qualifier", String(128), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("enqueued_at", Float, nullable=False),
    Column("visible_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_id", String(36), nullable=True),
)
