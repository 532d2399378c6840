"""Fixtures for the receive tests: a running node and a small synthetic CT study."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files
from tests.support.node_process import NodeProcess

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
    proc = NodeProcess(tmp_path_factory.mktemp("node"), NODE_CONFIG)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"node did not stop cleanly ({code}):\n{proc.log()}"


def make_study(folder: Path, n: int, size: int = 128, seed: int = 7) -> list[Path]:
    """``n`` CT slices of a fresh study written to ``folder``."""
    return write_files(iter_ct_series(n, Patient(patient_id=f"P{seed}"), rows=size, cols=size,
                                      seed=seed, study_uid=new_uid()), folder)
