"""A real node's scheduled retention removes a retained study whole: files, origin
records, series and study directories, rows (the store-level races are in
test_retention_store.py)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from tests.store.reconcile_support import instance_rows
from tests.support.dcmtk import storescu
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer


def test_the_node_removes_a_retained_study_from_its_store(tmp_path: Path) -> None:
    old = make_study(tmp_path / "src", 3, size=32, seed=71)
    study = pydicom.dcmread(old[0]).StudyInstanceUID
    cfg = {
        "models": {"bundled": False},  # no rule: each group ends unrouted, retention's
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.2}],
        # instances older than ~1.7 s go, checked every 0.6 s
        "jobs": {"retention": {"instances_days": 2e-5, "interval_minutes": 0.01}},
    }
    with NodeProcess(tmp_path / "node", cfg) as node:
        storescu(node.port, old, check=True)
        instances = node.data_dir / "instances"
        wait_until(lambda: "retention: deleted" in node.log(), timeout=60)
        wait_until(lambda: not any(instances.iterdir()), timeout=60)
        assert instance_rows(node.index) == {}
        assert instances.is_dir()
    assert "Traceback" not in node.log()
    assert not (instances / study).exists()
