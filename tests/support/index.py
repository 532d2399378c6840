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


def completed_groups(index: Path | str, study_uid: str, timeout: float = 20) -> list[tuple]:
    """The instance counts of ``study_uid``'s completed groups, once there is one (waits
    up to ``timeout`` s for the node to complete it)."""
    from tests.support.waiting import wait_until

    return wait_until(
        lambda: query(
            index,
            "SELECT instance_count FROM groups WHERE study_uid=:s AND completed_at IS NOT NULL",
            s=study_uid,
        ),
        timeout=timeout,
    )
