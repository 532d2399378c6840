"""Fixtures for the store tests (``index_url`` and ``postgres`` come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.store.writer import InstanceStore
from tests.support.node_process import NodeProcess


@pytest.fixture
def store(tmp_path: Path) -> Iterator[InstanceStore]:
    """An opened instance store in ``tmp_path / "data"``."""
    s = InstanceStore(tmp_path / "data")
    s.open()
    yield s
    s.close()


@pytest.fixture(scope="module")
def node_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node on SQLite shared by a module's tests."""
    with NodeProcess(tmp_path_factory.mktemp("node"), {"models": {"bundled": False}}) as proc:
        yield proc
