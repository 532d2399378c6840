"""Fixtures for the receive tests: a running node and a small synthetic CT study."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.db import sqlite_url
from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files
from tests.support import postgres as pg
from tests.support.node_process import NodeProcess, running_node

NODE_CONFIG = {
    "ae_titles": [
        {"ae_title": "DICOM_NODE", "quiet_seconds": 1.5},
        {"ae_title": "RESTRICTED", "quiet_seconds": 1,
         "allowed_calling": [{"ae_title": "GOODSCU"},
                             {"ae_title": "HOSTSCU", "host": "10.9.9.9"}]},
        {"ae_title": "BYSERIES", "group_by": "series", "quiet_seconds": 1},
    ],
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("storescu") is None:
        skip = pytest.mark.skip(reason="DCMTK not installed (scripts/install-system-deps.sh)")
        for item in items:
            if "peer" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node subprocess shared by the tests that do not need their own."""
    yield from running_node(tmp_path_factory.mktemp("node"), NODE_CONFIG)


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.PostgresServer]:
    """A real PostgreSQL server for the session (skipped where none can run)."""
    why = pg.available()
    if why:
        pytest.skip(why)
    with pg.PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The index on each supported database: a SQLite file, or a fresh PostgreSQL
    database on the session's server."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "index.sqlite")
    server: pg.PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


def make_study(folder: Path, n: int, size: int = 128, seed: int = 7) -> list[Path]:
    """``n`` CT slices of a fresh study written to ``folder``."""
    return write_files(iter_ct_series(n, Patient(patient_id=f"P{seed}"), rows=size, cols=size,
                                      seed=seed, study_uid=new_uid()), folder)
