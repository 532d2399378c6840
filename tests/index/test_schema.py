"""An index written by an older version is brought up to the current schema at start."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from dicom_node.db import Database, sqlite_url
from dicom_node.node import DB_FILENAME  # noqa: F401  (registers every table)


def test_an_index_from_an_older_version_gains_the_new_columns(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "index.sqlite"))
    db.create_all()
    with db.engine.begin() as conn:  # as the version before QIDO-RS's columns left it
        conn.execute(text("DROP INDEX ix_instances_modality"))
        conn.execute(text("ALTER TABLE instances DROP COLUMN modality"))
        conn.execute(text("ALTER TABLE instances DROP COLUMN study_description"))
    db.create_all()
    inspector = sa_inspect(db.engine)
    columns = {c["name"] for c in inspector.get_columns("instances")}
    assert {"modality", "study_description"} <= columns
    assert "ix_instances_modality" in {i["name"] for i in inspector.get_indexes("instances")}
    db.dispose()
