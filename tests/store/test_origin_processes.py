"""Two OS processes, each with the receive path's Intake, on one store directory and one
index, place the first instances of the same new series at the same moment (one as a
DIMSE peer, one as a STOW-RS client): the series gets exactly one origin record, the
first origin's, and every instance of the other origin a record of its own. After a
kill -9 of both, every row lost and a real node's restart, reconciliation indexes each
instance with the origin it came from and finds none without a record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dicom_node.db import sqlite_url
from dicom_node.store.origin import (
    DIMSE,
    INSTANCE_RECORD,
    SERIES_RECORD,
    STOWRS,
    Origin,
    instance_record,
    origin_of,
    series_record,
)
from tests.store.reconcile_support import SUMMARY, execute_sql, instance_rows, origin_node
from tests.support.node_process import ROOT
from tests.support.studies import make_study

pytestmark = pytest.mark.peer

ROUNDS = 40  # new series placed by both processes at once
PER_ROUND = 3  # instances each process places in a round's series
SENDERS = {
    "1": Origin(DIMSE, "BYSERIES", "MODX", "127.0.0.1"),
    "2": Origin(STOWRS, "WEBSRC", "http", "127.0.0.1"),
}


def _spawn(data_dir: Path, db_url: str, template: Path, origin: Origin) -> subprocess.Popen:
    args = [str(data_dir), db_url, str(template), origin.kind, origin.called_ae]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.intake_process", *args, origin.calling_ae],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_processes_place_the_first_instances_of_one_series_at_once(
    tmp_path: Path,
) -> None:
    template = make_study(tmp_path / "src", 1, size=16, seed=61)[0]
    study = "1.2.826.0.1.3680043.8.498.61"
    node = origin_node(tmp_path / "node")
    node.start()  # creates the index and the store, then dies without a clean stop
    node.kill()
    db_url = sqlite_url(node.data_dir / "index.sqlite")
    procs = {tag: _spawn(node.data_dir, db_url, template, o) for tag, o in SENDERS.items()}
    sent: dict[str, Origin] = {}  # SOP Instance UID -> its sender's origin
    owners = []
    try:
        for r in range(ROUNDS):
            series = f"{study}.{r + 1}"
            start = time.monotonic() + 0.15  # both spool first, then place at once
            for tag, proc in procs.items():
                assert proc.stdin is not None
                proc.stdin.write(f"{study} {series} {tag} {PER_ROUND} {start}\n")
                proc.stdin.flush()
            for tag, proc in procs.items():
                assert proc.stdout is not None
                reply = proc.stdout.readline().split()
                assert reply[:1] == ["ok"] and len(reply) == PER_ROUND + 1, (r, tag, reply)
                sent.update(dict.fromkeys(reply[1:], SENDERS[tag]))
            directory = node.data_dir / "instances" / study / series
            owner = Origin.decode(series_record(directory).read_bytes())
            owners.append(owner)
            names = sorted(p.name for p in directory.iterdir())
            others = [n for n in names if n.endswith(INSTANCE_RECORD)]
            assert names.count(SERIES_RECORD) == 1 and len(others) == PER_ROUND, (r, names)
            for sop in (f"{series}.{t}.{i}" for t in SENDERS for i in range(PER_ROUND)):
                path = directory / f"{sop}.dcm"
                assert origin_of(path) == sent[sop], (r, sop)
                assert instance_record(path).exists() == (sent[sop] != owner), (r, sop)
    finally:
        for proc in procs.values():  # kill -9, as a power loss would stop them
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert set(owners) == set(SENDERS.values()), "one process always won: no race"
    assert len(sent) == ROUNDS * PER_ROUND * 2

    execute_sql(node.index, ("DELETE FROM instances", {}), ("DELETE FROM groups", {}))
    node = origin_node(node.workdir, port=node.port)
    node.start()
    try:
        n = len(sent)
        summary = f"{n} file(s) seen, {n} re-indexed, 0 unreadable, 0 duplicate, 0 without"
        assert f"{SUMMARY} {summary}" in node.log()
    finally:
        assert node.stop() == 0
    rows = instance_rows(node.index)
    assert {sop: (r["called_ae"], r["calling_ae"]) for sop, r in rows.items()} == {
        sop: (o.called_ae, o.calling_ae) for sop, o in sent.items()
    }
