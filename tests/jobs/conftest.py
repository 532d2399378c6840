"""Fixtures of the job tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dicom_node.db import Database


@pytest.fixture()
def db(index_url: str) -> Iterator[Database]:
    """Every table, on SQLite and on PostgreSQL (``index_url``'s parameters)."""
    database = Database(index_url)
    database.create_all()
    yield database
    database.dispose()
