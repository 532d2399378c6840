"""The node's database: one SQLAlchemy engine, one declarative base for every table.

SQLite (WAL, busy timeout, foreign keys) by default; any SQLAlchemy URL works.
Tables are declared next to the code that owns them (``index``, ``jobs``) on ``Base``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


def utcnow() -> datetime:
    """Naive UTC now: the one form every time in the database takes."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base shared by all of the node's tables."""


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoint, fast
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # LIKE as DICOM matches (PS3.4 C.2.2.2) and PostgreSQL does: case-sensitive (QIDO-RS
        # lowers both sides for PN itself). SQLite's default ignored ASCII case.
        cur.execute("PRAGMA case_sensitive_like=ON")
        cur.close()


class Database:
    """An engine plus a session factory. Thread-safe; share one per process."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            _configure_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        """An empty database: create every table declared on ``Base`` (import the table
        modules first) and stamp it at the newest schema revision. A database that already
        has tables is left alone (see ``dicom_node.schema`` for checks and upgrades)."""
        from dicom_node.schema import create_at_head  # late: alembic imports this module

        create_at_head(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def describe(self) -> str:
        """The URL with any password hidden, for banners and logs."""
        return self.engine.url.render_as_string(hide_password=True)
