"""A node's STOW-RS batch (:meth:`~dicom_node.store.intake.Intake.keep_all`) and a second
OS process with the receive path's Intake (tests/store/intake_process.py, one instance at
a time) store the same new instances into one store and one index at the same moment:
each instance is indexed once, every acknowledged one has its row and its file, no file
is left without a row, nothing is left spooled, and the group counts each once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pydicom
import pytest
import requests

from dicom_node.db import sqlite_url
from dicom_node.store.origin import DIMSE
from tests.http.support import RELATED
from tests.store.support import inconsistencies
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess
from tests.support.studies import make_study

pytestmark = pytest.mark.peer

ROUNDS = 4  # new series both store at once
COUNT = 60  # instances of a round's series (one STOW-RS batch)
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"


def _spawn(node: NodeProcess, db_url: str, template: Path) -> subprocess.Popen:
    args = [str(node.data_dir), db_url, str(template), DIMSE, "WEBSRC", "MODX"]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.intake_process", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _body(template: Path, study: str, series: str, boundary: str) -> bytes:
    """The instances intake_process stores for ``series`` with tag ``9``, as one
    multipart/related body."""
    ds = pydicom.dcmread(template)
    out = []
    for i in range(COUNT):
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{series}.9.{i}"
        buf = pydicom.filebase.DicomBytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        out.append(buf.getvalue() + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _post_at(
    url: str, body: bytes, boundary: str, start: float, answer: list[requests.Response]
) -> None:
    """POST ``body`` once ``time.monotonic()`` reaches ``start``; its answer to ``answer``."""
    while time.monotonic() < start:
        time.sleep(0.001)
    headers = {"Content-Type": RELATED.format(boundary)}
    answer.append(requests.post(url, data=body, headers=headers, timeout=60))


def test_stow_batch_and_another_process_store_the_same_instances(
    tmp_path: Path, index_url: str
) -> None:
    template = make_study(tmp_path / "src", 1, size=16, seed=71)[0]
    study = "1.2.826.0.1.3680043.8.498.71"
    cfg: dict[str, object] = {
        "models": {"bundled": False},
        "http": {"web_source": {"ae_title": "WEBSRC", "quiet_seconds": 120}},
    }
    if not index_url.startswith("sqlite"):
        cfg["database_url"] = index_url
    node = NodeProcess(tmp_path / "node", cfg)
    node.start()
    db_url = node.index if isinstance(node.index, str) else sqlite_url(node.index / "index.sqlite")
    other = _spawn(node, db_url, template)
    acknowledged: set[str] = set()
    try:
        for r in range(ROUNDS):
            series = f"{study}.{r + 1}"
            boundary = uuid.uuid4().hex
            body = _body(template, study, series, boundary)
            start = time.monotonic() + 0.3 + 0.05 * r  # both write first, then store
            assert other.stdin is not None and other.stdout is not None
            other.stdin.write(f"{study} {series} 9 {COUNT} {start}\n")
            other.stdin.flush()
            answer: list[requests.Response] = []
            url = f"{node.http_url}/dicomweb/studies"
            poster = threading.Thread(target=_post_at, args=(url, body, boundary, start, answer))
            poster.start()
            reply = other.stdout.readline().split()
            poster.join(60)
            assert reply[:1] == ["ok"] and len(reply) == COUNT + 1, (r, " ".join(reply))
            acknowledged |= set(reply[1:])
            assert answer and answer[0].status_code == 200, (r, answer and answer[0].text[:500])
            listed = answer[0].json()[REFERENCED_SOP_SEQUENCE]["Value"]
            assert len(listed) == COUNT, (r, answer[0].text[:500])
            acknowledged |= {item[REFERENCED_SOP_INSTANCE_UID]["Value"][0] for item in listed}
            assert inconsistencies(node) == [], r
    finally:
        os.kill(other.pid, signal.SIGKILL)
        other.wait()
    try:
        rows = query(node.index, "SELECT sop_instance_uid, calling_ae FROM instances")
        assert sorted(s for s, _ in rows) == sorted(acknowledged)
        assert {c for _, c in rows} == {"MODX", "http"}, "one side always won: no race"

        assert len(acknowledged) == ROUNDS * COUNT
        counts = query(node.index, "SELECT sum(instance_count) FROM groups")
        assert counts == [(ROUNDS * COUNT,)]
        assert "indexing failed" not in node.log()
    finally:
        node.kill()
