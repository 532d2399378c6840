"""A destination that never finishes its answer must not stall the node: a real node
process (one job worker) forwards two studies to a STOW-RS destination that trickles an
endless body (tests/support/hostile_http.py) and to a DCMTK storescp. Each attempt to
the bad destination ends at its timeout and is on record as transient; the healthy one
gets both studies; the jobs wait for their retry; the CLI still answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files
from tests.support.dcmtk import storescu
from tests.support.hostile_http import HostileHttp, trickle
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer


def test_an_endless_stow_answer_does_not_stall_other_destinations_or_studies(
    tmp_path: Path,
) -> None:
    studies = [
        write_files(
            iter_ct_series(1, Patient(patient_id=f"P{n}"), rows=16, cols=16, study_uid=new_uid()),
            tmp_path / f"study{n}",
        )
        for n in (1, 2)
    ]
    # One byte every 0.2 s of an announced 100 kB: the answer would take 5.5 hours.
    with (
        HostileHttp(trickle(200, total=100_000, every=0.2)) as web,
        StoreSCP(tmp_path / "pacs", ae_title="PACS") as pacs,
    ):
        cfg = {
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
            "destinations": [
                {"name": "web", "kind": "stowrs", "url": web.url, "timeout": 1},
                {
                    "name": "pacs",
                    "kind": "dimse",
                    "ae_title": "PACS",
                    "host": "127.0.0.1",
                    "port": pacs.port,
                },
            ],
            "routes": [{"name": "both", "action": "forward", "destinations": ["web", "pacs"]}],
            "jobs": {"workers": 1, "retry": {"base_s": 600, "cap_s": 600, "jitter": 0}},
        }
        node = NodeProcess(tmp_path / "node", cfg)
        node.start()
        try:
            for files in studies:
                assert storescu(node.port, files).returncode == 0
            # Before the bounded read, the one worker waited on "web" for good.
            pacs.wait_for_files(2, timeout=60)

            def finished(sql: str, n: int) -> list[tuple]:
                rows = query(node.index, sql)
                return rows if len(rows) == n else []

            attempts = wait_until(
                lambda: finished(
                    "SELECT destination, outcome, error FROM delivery_attempts "
                    "WHERE destination = 'web' AND finished_at IS NOT NULL ORDER BY id",
                    2,
                ),
                timeout=30,
            )
            jobs = wait_until(
                lambda: finished("SELECT state FROM jobs WHERE state = 'failed'", 2), timeout=30
            )
            listed = subprocess.run(
                [sys.executable, "-m", "dicom_node", "jobs", "list"]
                + ["--config", str(node.config_path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            node.stop()
    assert [(d, o) for d, o, _ in attempts] == [("web", "transient")] * 2
    assert all("not complete after 1.0s" in (e or "") for _, _, e in attempts), attempts
    assert len(jobs) == 2  # waiting for their retry, not dead, not stuck delivering
    assert listed.returncode == 0 and listed.stdout.count("failed") >= 2, listed
    assert "not complete after 1.0s" in node.log()  # one line per failure, naming the job
