"""Bounded PDU fuzzing of a real node: mutations of a valid association (A-ASSOCIATE-RQ,
C-ECHO, a small C-STORE, A-RELEASE-RQ), lying length fields, unknown context ids. After
each batch the node must answer C-ECHO, be back near its baseline RSS, threads and fds,
and hold nothing half-written in incoming/ or the index.

CI runs a fixed seed and a small budget; ``pytest tests/network/test_fuzz_pdus.py --long``
(or FUZZ_LONG=1, or FUZZ_CASES=n) runs longer."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from dicom_node.network.spool import SWEEP_SECONDS
from tests.network import fuzz, pdus, probe
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.waiting import wait_for

SEED = 20261201
CI_CASES, LONG_CASES, BATCH = 60, 3000, 30


def _cases(config: pytest.Config) -> int:
    if "FUZZ_CASES" in os.environ:
        return int(os.environ["FUZZ_CASES"])
    long = config.getoption("--long", default=False) or os.environ.get("FUZZ_LONG") == "1"
    return LONG_CASES if long else CI_CASES


def _store_consistent(node: NodeProcess) -> None:
    """Every indexed instance is a readable file; every stored file is indexed; once the
    node has ended every association, nothing received is left in incoming/ (or, with the
    spool tweak off, in its TMPDIR). A file still being written by an association in
    flight is not a leftover, hence the wait; the spool's sweep of associations that ended
    without an event runs every SWEEP_SECONDS, hence the short grace after it."""
    probe.wait_associations_closed(node)
    wait_for(
        lambda: not probe.spool_leftovers(node),
        2 + 4 * SWEEP_SECONDS,
        "received datasets to be removed",
        node.log,
    )
    rows = query(node.index, "SELECT path FROM instances")
    indexed = {Path(p) for (p,) in rows}
    assert all(p.is_file() and p.stat().st_size > 132 for p in indexed)
    on_disk = set((node.data_dir / "instances").rglob("*.dcm"))
    assert on_disk <= {p.resolve() for p in indexed} | indexed


def test_mutated_association_streams(
    hostile_node: NodeProcess, request: pytest.FixtureRequest
) -> None:
    node = hostile_node
    rss0, fds0, threads0 = probe.baseline(node)
    rng = random.Random(request.config.getoption("--fuzz-seed", default=None) or SEED)
    total = _cases(request.config)
    done = 0
    while done < total:
        for _ in range(min(BATCH, total - done)):
            stream = fuzz.mutate(rng, pdus.valid_stream())
            fuzz.play(node.port, stream)
            done += 1
        assert probe.echo_ok_within(node.port), f"after {done} cases:\n{node.log()[-3000:]}"
        assert probe.settle(lambda: probe.fds(node.pid), fds0, 2, timeout=30) <= fds0 + 2
        assert (
            probe.settle(lambda: probe.threads(node.pid), threads0, 2, timeout=30) <= threads0 + 2
        )
        assert probe.settle(lambda: probe.rss_kb(node.pid), rss0, 30 * 1024) <= rss0 + 30 * 1024
        _store_consistent(node)


@pytest.mark.parametrize("claimed", [7, 1 << 20, (1 << 20) + 1, 0x7FFFFFFF, 0xFFFFFFFF])
@pytest.mark.parametrize("kind", [0x01, 0x04, 0x05, 0x07])
def test_lying_length_fields(hostile_node: NodeProcess, kind: int, claimed: int) -> None:
    """A PDU of each type claiming a length it does not send (after an association, for
    P-DATA, release and abort; instead of one for the A-ASSOCIATE-RQ)."""
    node = hostile_node
    rss0 = probe.rss_kb(node.pid)
    head = pdus.pdu(kind, b"\x00" * 64, length=claimed)
    fuzz.play(node.port, [head] if kind == 0x01 else [pdus.associate_rq(), head])
    assert probe.rss_kb(node.pid) - rss0 <= 2 * 1024 + 16 * 1024
    assert probe.echo_ok_within(node.port)
