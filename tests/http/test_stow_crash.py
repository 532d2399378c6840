"""kill -9 while STOW-RS requests are under way: nothing answered as stored is lost,
nothing is half-written, and the client's resend completes the study exactly once.

The node is killed at two stages of a request: while it stores the parts of a body that
has arrived (some parts placed and indexed, no response sent), and while a body is still
arriving (a part half-spooled in ``incoming/``). After each restart the client resends the
request it got no answer for, as a real STOW-RS client does.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydicom import dcmread

from tests.http.support import RELATED
from tests.support.index import completed_groups, query
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study, spooled_data, wait_for_stored
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer

BATCH = 10  # instances per STOW-RS request
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"


def slow_body(files: list[Path], boundary: str) -> Iterator[bytes]:
    """A chunked multipart/related body that takes a while to arrive (about 20 ms a
    file), so that a kill can land while it is being received."""
    for f in files:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        data = f.read_bytes()
        for i in range(0, len(data), 32768):
            yield data[i : i + 32768]
            time.sleep(0.005)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


class Client(threading.Thread):
    """Posts ``files`` in requests of :data:`BATCH`, resending a request that got no
    answer (the node was killed) until it is answered; records what each 200 listed as
    stored. It starts a request only while :attr:`go` is set (the test holds it while it
    kills, restarts and checks the node)."""

    def __init__(self, url: str, files: list[Path]) -> None:
        super().__init__(daemon=True)
        self.url, self.files = url, files
        self.acknowledged: set[str] = set()
        self.unanswered = 0  # requests cut by a kill
        self.error: str | None = None
        self.go = threading.Event()
        self.go.set()

    def run(self) -> None:
        for i in range(0, len(self.files), BATCH):
            deadline = time.monotonic() + 120
            while True:
                if not self.go.wait(120):
                    self.error = "never resumed"
                    return
                boundary = uuid.uuid4().hex
                try:
                    r = requests.post(
                        self.url,
                        data=slow_body(self.files[i : i + BATCH], boundary),
                        headers={"Content-Type": RELATED.format(boundary)},
                        timeout=60,
                    )
                except requests.ConnectionError:
                    self.unanswered += 1
                    if time.monotonic() > deadline:
                        self.error = "node did not come back"
                        return
                    time.sleep(0.2)
                    continue
                if r.status_code != 200:
                    self.error = f"HTTP {r.status_code}: {r.text[:500]}"
                    return
                for item in r.json()[REFERENCED_SOP_SEQUENCE]["Value"]:
                    self.acknowledged.add(item[REFERENCED_SOP_INSTANCE_UID]["Value"][0])
                break


def check_consistent(node: NodeProcess, acknowledged: set[str], sources: dict[str, Path]) -> None:
    """After a restart: every instance answered as stored is indexed once with its bytes;
    every row has its file and every file its row; nothing is left spooled."""
    rows = query(node.index, "SELECT sop_instance_uid, path FROM instances")
    by_sop: dict[str, list[str]] = {}
    for sop, path in rows:
        by_sop.setdefault(sop, []).append(path)
    for sop in acknowledged:
        assert len(by_sop.get(sop, [])) == 1, f"{sop} answered as stored, indexed {by_sop.get(sop)}"
        stored = dcmread(by_sop[sop][0])
        assert stored.PixelData == dcmread(sources[sop]).PixelData
    indexed = {Path(p).resolve() for _, p in rows}
    files = {p.resolve() for p in (node.data_dir / "instances").rglob("*.dcm")}
    assert indexed == files, f"rows without file {indexed - files}, unindexed {files - indexed}"
    assert not spooled_data(node.data_dir / "incoming")


def test_kill_9_during_stow_then_restart_and_resend(tmp_path: Path) -> None:
    files = make_study(tmp_path / "src", 40, size=256, seed=41)
    sources = {dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}
    node = NodeProcess(
        tmp_path / "node",
        {
            "models": {"bundled": False},
            # A quiet period well past a restart plus a resend: on a loaded machine 1 s
            # let the study's group complete between the kill and the resend (15 of 40).
            "http": {"web_source": {"ae_title": "WEBSRC", "quiet_seconds": 6}},
        },
    )
    node.start()
    client = Client(f"{node.http_url}/dicomweb/studies", files)
    try:
        client.start()
        # Stage 1: the second request's body has arrived and its parts are being stored.
        wait_for_stored(node.data_dir, BATCH + BATCH // 2, timeout=60)
        client.go.clear()
        node.kill()
        node.start()
        check_consistent(node, set(client.acknowledged), sources)
        client.go.set()
        # Stage 2: a part of a later request is half-spooled.
        wait_until(
            lambda: client.acknowledged and spooled_data(node.data_dir / "incoming"),
            timeout=60,
            interval=0.005,
        )
        client.go.clear()
        node.kill()
        node.start()
        check_consistent(node, set(client.acknowledged), sources)
        client.go.set()
        client.join(timeout=120)
        assert not client.is_alive() and client.error is None, client.error
        assert client.unanswered >= 1
        assert client.acknowledged == set(sources)
        check_consistent(node, client.acknowledged, sources)
        study = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
        groups = completed_groups(node.index, study, timeout=30)
        assert groups == [(len(files),)]
    finally:
        node.kill()


class WriteLock:
    """A real second writer of the node's SQLite index: while it holds its transaction,
    the node's index commit waits (its busy timeout), so a request's batch stays
    placed but unindexed for as long as the test needs to kill the node there."""

    def __init__(self, index: Path) -> None:
        self.conn = sqlite3.connect(index / "index.sqlite", isolation_level=None)

    def __enter__(self) -> WriteLock:
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def post_all(url: str, files: list[Path]) -> requests.Response | None:
    """One STOW-RS request of ``files``: its answer, or None if the node was killed."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + f.read_bytes()
        + b"\r\n"
        for f in files
    )
    body += f"--{boundary}--\r\n".encode()
    try:
        return requests.post(
            url, data=body, headers={"Content-Type": RELATED.format(boundary)}, timeout=60
        )
    except requests.ConnectionError:
        return None


def kill_in_batch_window(node: NodeProcess, url: str, files: list[Path], placed: int) -> None:
    """Post ``files`` in one request while a second writer holds the index, and kill -9
    the node once ``placed`` instance files are linked into the store (none indexed)."""
    answer: list[requests.Response | None] = []
    poster = threading.Thread(target=lambda: answer.append(post_all(url, files)), daemon=True)
    with WriteLock(node.data_dir):
        poster.start()
        wait_for_stored(node.data_dir, placed, timeout=60)
        node.kill()
    poster.join(timeout=60)
    assert answer == [None], "the request was answered although its batch was not indexed"


def test_kill_9_between_batch_placement_and_its_index_commit(tmp_path: Path) -> None:
    files = make_study(tmp_path / "src", 60, size=32, seed=43)
    sources = {dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}
    study = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    node = NodeProcess(
        tmp_path / "node",
        {
            "models": {"bundled": False},
            "http": {"web_source": {"ae_title": "WEBSRC", "quiet_seconds": 6}},
        },
    )
    node.start()
    url = f"{node.http_url}/dicomweb/studies"
    try:
        # Killed with half the request's batch placed, then (resent) with the rest placed
        # and the first half indexed by reconciliation.
        for placed in (len(files) // 2, len(files)):
            kill_in_batch_window(node, url, files, placed)
            node.start()
            check_consistent(node, set(), sources)
            rows = query(node.index, "SELECT called_ae, calling_ae FROM instances")
            assert len(rows) >= placed
            assert {called for called, _ in rows} == {"WEBSRC"}
        r = post_all(url, files)
        assert r is not None and r.status_code == 200, r and r.text[:500]
        acknowledged = {
            item[REFERENCED_SOP_INSTANCE_UID]["Value"][0]
            for item in r.json()[REFERENCED_SOP_SEQUENCE]["Value"]
        }
        assert acknowledged == set(sources)
        check_consistent(node, acknowledged, sources)
        assert completed_groups(node.index, study, timeout=30) == [(len(files),)]
    finally:
        node.kill()
