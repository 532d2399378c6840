"""A real SQLite index with the jobs' tables (groups to fill it: tests/jobs/support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.db import Database, sqlite_url
from dicom_node.index import tables  # noqa: F401
from dicom_node.jobs import models  # noqa: F401


@pytest.fixture()
def index(tmp_path: Path) -> Database:
    db = Database(sqlite_url(tmp_path / "index.sqlite"))
    db.create_all()
    yield db
    db.dispose()
