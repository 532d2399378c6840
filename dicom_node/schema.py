"""The database schema's version (Alembic): create at head, check, upgrade.

- An empty database is created from the tables' metadata and stamped at head.
- A database without ``alembic_version`` that has the node's tables was created by the
  release before migrations existed (commit 8da2ed1): it is at ``BASELINE``.
- ``serve`` and ``worker`` refuse a database older than the code (``SchemaError`` names
  `dicom-node db upgrade`) and one newer than the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from dicom_node.db import Base, Database
from dicom_node.http import results as _results_table  # noqa: F401  (registers the tables)
from dicom_node.index import tables as _index_tables  # noqa: F401
from dicom_node.jobs import models as _job_tables  # noqa: F401

BASELINE = "0001_baseline_8da2ed1"
_MIGRATIONS = Path(__file__).parent / "migrations"
_NODE_TABLES = {"groups", "instances", "jobs"}
_LOCK_ID = 0x6469636F  # PostgreSQL advisory lock: one process changes the schema at a time


class SchemaError(Exception):
    """The database's schema does not match this code."""


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head() -> str:
    """The revision this code expects."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def _known() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


@contextmanager
def _locked(db: Database) -> Iterator[Connection]:
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ID})
            conn.commit()
        try:
            yield conn
        finally:
            if conn.dialect.name == "postgresql":
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                conn.commit()


def revision_of(conn: Connection) -> str | None:
    """The database's revision: stamped, BASELINE if it predates migrations, None if empty."""
    rev = MigrationContext.configure(conn).get_current_revision()
    if rev is None and _NODE_TABLES & set(inspect(conn).get_table_names()):
        return BASELINE
    return rev


def create_at_head(db: Database) -> None:
    """Create the tables and stamp head if the database is empty; leave any other alone."""
    with _locked(db) as conn:
        if revision_of(conn) is None:
            Base.metadata.create_all(conn)
            command.stamp(_config(conn), "head")
            conn.commit()
            if conn.dialect.name == "sqlite":  # the new tables' pages out of the WAL file
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def ensure_current(db: Database) -> None:
    """Create an empty database at head; raise SchemaError unless it is at head."""
    create_at_head(db)
    with db.engine.connect() as conn:
        rev = revision_of(conn)
    want = head()
    if rev == want:
        return
    if rev not in _known():
        raise SchemaError(
            f"database {db.describe()} has schema revision {rev}, which this "
            f"code does not know (newer than {want}?): upgrade dicom-node"
        )
    raise SchemaError(
        f"database {db.describe()} has schema revision {rev}, older than this "
        f"code's {want}: back it up, then run `dicom-node db upgrade --config "
        "<your node.yaml>`"
    )


def upgrade(db: Database) -> tuple[str | None, str]:
    """Bring the database to head; returns (revision before, revision after)."""
    with _locked(db) as conn:
        before = revision_of(conn)
        if before is None:
            Base.metadata.create_all(conn)
            command.stamp(_config(conn), "head")
        else:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # SQLite alters a table by copying it; dropping the old copy must not
                # cascade to the rows that reference it. Outside any transaction.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            if MigrationContext.configure(conn).get_current_revision() is None:
                command.stamp(_config(conn), BASELINE)
            command.upgrade(_config(conn), "head")
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                conn.commit()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                if broken:
                    raise SchemaError(f"upgrade left broken references: {broken[:5]}")
        conn.commit()
    return before, head()
