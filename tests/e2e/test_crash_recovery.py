"""kill -9 during inference: after a restart the job completes and delivers exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy.exc import OperationalError

from dicom_node import synthetic
from tests.support.dcmtk import storescu
from tests.support.index import attempts, job_rows
from tests.support.node_process import NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_for, wait_until

pytestmark = pytest.mark.peer


def job_state(data_dir: Path) -> str | None:
    try:
        rows = job_rows(data_dir)
    except OperationalError:  # tables not there yet
        return None
    return rows[0][1] if rows else None


def test_kill_during_inference_then_restart_delivers_once(tmp_path: Path) -> None:
    source = synthetic.write_files([synthetic.make_cr(seed=31)], tmp_path / "study")
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        node = NodeProcess(
            tmp_path / "node",
            config={
                "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
                # The batcher waits 4 s for batch-mates: the job is inside inference then.
                "models": {"max_wait_ms": 4000},
                "results": {"heatmaps": "top"},  # one heatmap SC: a fixed count
            },
            extra_args=["--destination", f"PACS@127.0.0.1:{pacs.port}"],
        )
        node.start()
        storescu(node.port, source, calling="MODALITY", check=True)
        wait_until(
            lambda: job_state(node.data_dir) == "running",
            30,
            interval=0.05,
            describe=lambda: node.log()[-3000:],
        )
        time.sleep(0.5)
        node.kill()
        assert job_state(node.data_dir) == "running"  # the crash left it claimed
        assert pacs.received() == []

        node.start()
        try:
            pacs.wait_for_files(3, timeout=60)
            wait_for(lambda: job_state(node.data_dir) == "done", 30, "the job done", node.log)
            time.sleep(1.0)
        finally:
            node.stop()
        rows = job_rows(node.data_dir)
        assert [r[1] for r in rows] == ["done"] and rows[0][2] == 2  # second attempt did it
        [attempt] = attempts(node.data_dir)
        assert (attempt[1], attempt[2]) == ("PACS", "delivered")
        # SR + heatmap + findings card, + a key object selection when something is positive
        sent = attempt[3]
        assert sent in (3, 4)
        files = pacs.received()
        assert len(files) == sent
        assert len({dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}) == sent
        assert "queued again" in node.log()
