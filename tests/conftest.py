"""Options, hooks and fixtures shared by every test directory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.db import Database, sqlite_url
from dicom_node.index import tables  # noqa: F401 - registers the index tables
from dicom_node.jobs import models  # noqa: F401 - registers the job tables
from tests.support import hypo, node_process
from tests.support import postgres as pg
from tests.support.dcmtk import skip_peer_tests_without_dcmtk
from tests.support.resolver import hanging_resolver  # noqa: F401 - a fixture for every test


def pytest_addoption(parser: pytest.Parser) -> None:
    # Fuzz suites run a fixed seed and a small budget in CI; --long runs many more cases.
    with contextlib.suppress(ValueError):  # another conftest may have added it
        parser.addoption(
            "--long",
            action="store_true",
            default=False,
            help="run the fuzz suites with a large budget",
        )
    with contextlib.suppress(ValueError):
        parser.addoption(
            "--fuzz-seed",
            type=int,
            default=None,
            help="seed of the fuzz suites (default: fixed per suite)",
        )


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's workers inherit COLUMNS=80, which a CLI module's Console would fix
    # as its width at import; the CLI tests set the width they need per invocation.
    os.environ.pop("COLUMNS", None)
    hypo.configure(config.getoption("--long", False), config.getoption("--fuzz-seed", None))
    node_process.SEED_DEMO = True  # nodes copy one demo build (tests/support/node_process.py)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip_peer_tests_without_dcmtk(items)


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


@pytest.fixture()
def index(tmp_path: Path) -> Iterator[Database]:
    """An empty SQLite index with every table."""
    db = Database(sqlite_url(tmp_path / "index.sqlite"))
    db.create_all()
    yield db
    db.dispose()
