"""Fixtures for the store tests (``index_url`` and ``postgres`` come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.store.writer import InstanceStore
from tests.network.nodes import TWEAK_MODES
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


@pytest.fixture(scope="module", params=TWEAK_MODES, ids=lambda mode: f"tweaks={mode}")
def node_each_tweak_mode(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    """One node on SQLite per module and pynetdicom tweak mode (``all``, ``none``): the
    hostile-input tests must pass with the tweaks on and off. Its own TMPDIR, where
    pynetdicom receives datasets with the spool tweak off."""
    workdir = tmp_path_factory.mktemp("node")
    (workdir / "tmp").mkdir()
    env = {"DICOM_NODE_TWEAKS": request.param, "TMPDIR": str(workdir / "tmp")}
    with NodeProcess(workdir, {"models": {"bundled": False}}, env=env) as proc:
        yield proc
