"""Fixtures for the store/index hostile-input tests (shared with tests/node)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.node.conftest import index_url, postgres, pytest_collection_modifyitems
from tests.support.node_process import NodeProcess

__all__ = ["index_url", "postgres", "pytest_collection_modifyitems"]


@pytest.fixture(scope="module")
def node_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node on SQLite shared by a module's tests."""
    with NodeProcess(tmp_path_factory.mktemp("node"),
                     {"models": {"bundled": False}}) as proc:
        yield proc
