"""The node's database: one SQLAlchemy engine, one declarative base for every table.

SQLite (WAL, busy timeout, foreign keys) by default; any SQLAlchemy URL works.
Tables are declared next to the code that owns them (``index``, ``jobs``) on ``Base``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
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
        """Create every table declared on ``Base`` (import the table modules first), and
        add the nullable columns and indexes a newer version declares to tables an older
        one created (the only schema change so far: additive)."""
        Base.metadata.create_all(self.engine)
        self._add_missing_columns()
        if self.engine.dialect.name == "sqlite":
            # Start with an empty WAL: the schema (~300 kB on a new index) goes into the
            # database file now rather than at the first automatic checkpoint.
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def _add_missing_columns(self) -> None:
        inspector = inspect(self.engine)
        for table in Base.metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            missing = [c for c in table.columns if c.name not in present]
            if not missing:
                continue
            with self.engine.begin() as conn:
                for column in missing:
                    if not column.nullable:
                        raise RuntimeError(f"table {table.name} lacks the required column "
                                           f"{column.name}: migrate the database")
                    kind = column.type.compile(dialect=self.engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN '
                                      f'{column.name} {kind}'))
            for index in table.indexes:
                index.create(self.engine, checkfirst=True)

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
