"""A bad destination must not stall the node's other deliveries. A real node process
with one job worker and a DCMTK storescp as the healthy destination:

- a STOW-RS destination that trickles an endless answer (tests/support/hostile_http.py):
  each attempt ends at its timeout, on record as transient; the healthy destination gets
  both studies; the jobs wait for their retry; the CLI still answers;
- a DIMSE black hole (accepts TCP, never answers) that three studies keep retrying: a
  fourth study, for the healthy destination, is delivered while they still retry.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def black_hole() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP port that accepts connections and never says a word: (port, connections)."""
    conns: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conns.append(listener.accept()[0])
            except OSError:  # closed
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], conns
    finally:
        listener.close()
        for c in conns:
            c.close()


def test_retries_to_a_black_hole_do_not_starve_a_newer_study(tmp_path: Path) -> None:
    studies = [
        write_files(
            iter_ct_series(1, Patient(patient_id=f"P{n}"), rows=16, cols=16, study_uid=new_uid()),
            tmp_path / f"study{n}",
        )
        for n in range(4)
    ]
    with black_hole() as (hole_port, conns), StoreSCP(tmp_path / "pacs", ae_title="PACS") as pacs:
        cfg = {
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
            "destinations": [
                {
                    "name": "hole",
                    "kind": "dimse",
                    "ae_title": "HOLE",
                    "host": "127.0.0.1",
                    "port": hole_port,
                    "timeout": 1,
                },
                {
                    "name": "pacs",
                    "kind": "dimse",
                    "ae_title": "PACS",
                    "host": "127.0.0.1",
                    "port": pacs.port,
                },
            ],
            "routes": [
                {
                    "name": "to-hole",
                    "match": {"calling_ae": ["SCU_A"]},
                    "action": "forward",
                    "destinations": ["hole"],
                },
                {
                    "name": "to-pacs",
                    "match": {"calling_ae": ["SCU_B"]},
                    "action": "forward",
                    "destinations": ["pacs"],
                },
            ],
            # Each attempt at the hole takes its 1 s timeout; its retry is due 0.5 s later.
            "jobs": {
                "workers": 1,
                "retry": {"base_s": 0.5, "cap_s": 0.5, "jitter": 0, "max_attempts": 1000},
            },
        }
        node = NodeProcess(tmp_path / "node", cfg)
        node.start()
        try:
            for files in studies[:3]:
                assert storescu(node.port, files, "DICOM_NODE", "SCU_A").returncode == 0
            wait_until(  # the three are retrying
                lambda: (
                    query(
                        node.index,
                        "SELECT count(*) FROM delivery_attempts "
                        "WHERE destination = 'hole' AND finished_at IS NOT NULL",
                    )[0][0]
                    >= 4
                ),
                timeout=60,
            )
            assert storescu(node.port, studies[3], "DICOM_NODE", "SCU_B").returncode == 0
            # Before claims went by due time, the three older jobs' retries, always due
            # when the worker freed up, kept this one queued until they died.
            pacs.wait_for_files(1, timeout=60)
            hole_jobs = query(node.index, "SELECT state FROM jobs WHERE destinations LIKE '%hole%'")
        finally:
            node.stop()
    assert len(hole_jobs) == 3 and all(s != "dead" for (s,) in hole_jobs), hole_jobs
    assert len(conns) >= 4  # every attempt at the hole did reach it
