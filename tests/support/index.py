"""Reads of a running node's index, straight from the database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from dicom_node.db import sqlite_url


def query(index: Path | str, sql: str, **params: object) -> list[tuple]:
    """Read the node's index directly: a data directory's SQLite file (WAL lets us read
    while it runs) or a database URL."""
    url = index if isinstance(index, str) else sqlite_url(Path(index) / "index.sqlite")
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql), params)]
    finally:
        engine.dispose()


def job_rows(data_dir: Path) -> list[tuple]:
    """Every job of a data directory's index: id, state, attempts, error."""
    return query(data_dir, "select id, state, attempts, error from jobs order by id")


def attempts(data_dir: Path) -> list[tuple]:
    """Every delivery attempt: job, destination, outcome, sent, accepted."""
    return query(
        data_dir,
        "select job_id, destination, outcome, sent, accepted from delivery_attempts order by id",
    )
