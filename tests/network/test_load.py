"""Load against a real node: 200 concurrent storing associations while 50 idle and 35
slow (half an A-ASSOCIATE-RQ) connections wait (more than ``max_waiting_connections``:
the ones waiting longest are dropped). Every acknowledged instance must be indexed and
readable, associations beyond ``max_associations`` must get a proper A-ASSOCIATE-RJ, the
node must keep serving, and its RSS must come back within 50 MB of the baseline."""

from __future__ import annotations

import contextlib
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from dicom_node.synthetic import iter_ct_series, new_uid
from tests.network import pdus, probe
from tests.network.nodes import start_node
from tests.support.index import query

STORERS, IDLE, SLOW, PER_ASSOCIATION = 200, 50, 35, 2
MAX_ASSOCIATIONS = 150  # fewer than the storers: some must be rejected


def _store(port: int, datasets: list) -> tuple[str, list[tuple[str, int]]]:  # type: ignore[type-arg]
    """One association: ("rejected" | "established" | "failed", [(uid, status)])."""
    ae = AE(ae_title="LOADSCU")
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 60
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        # A proper rejection: transient, provider (presentation), local limit exceeded
        ok = (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
        return ("rejected" if ok else f"odd rejection {rj.result_str}"), []
    if not assoc.is_established:
        return "failed", []
    out = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            out.append((ds.SOPInstanceUID, int(status.Status) if status else -1))
    finally:
        assoc.release()
    return "established", out


@pytest.mark.slow
def test_concurrent_idle_and_slow_associations(tmp_path: Path) -> None:
    node = start_node(
        tmp_path,
        "all",
        max_associations=MAX_ASSOCIATIONS,
        max_associations_per_peer=MAX_ASSOCIATIONS,  # every storer is 127.0.0.1
        # Long enough that the idle and slow ones hold their slots for the whole run and
        # a storer starved of CPU on a loaded machine is not timed out mid-association.
        network_timeout=90,
        acse_timeout=90,
        logging={"level": "WARNING"},
    )
    held: list[socket.socket] = []
    try:
        assert probe.echo_ok(node.port)
        assert probe.store_ok(node.port, pdus.small_ct())
        rss0 = probe.rss_kb(node.pid)
        for _ in range(IDLE):
            held.append(pdus.connect(node.port))
        for _ in range(SLOW):
            s = pdus.connect(node.port)
            s.sendall(pdus.associate_rq()[:40])
            held.append(s)
        # One full-size slice (PDUs of the maximum size) and a small one per association
        big = list(iter_ct_series(STORERS, rows=512, cols=512, study_uid=new_uid()))
        small = list(
            iter_ct_series(STORERS * (PER_ASSOCIATION - 1), rows=64, cols=64, study_uid=new_uid())
        )
        batches = [[big[i], *small[i::STORERS]] for i in range(STORERS)]
        with ThreadPoolExecutor(STORERS) as pool:
            results = list(pool.map(lambda b: _store(node.port, b), batches))
        kinds = [k for k, _ in results]
        assert set(kinds) <= {"established", "rejected"}, kinds
        assert "rejected" in kinds  # 200 storers for 150 slots
        acked = [uid for _, out in results for uid, status in out if status == 0]
        assert acked
        assert all(status == 0 for _, out in results for _, status in out)
        assert probe.echo_ok(node.port)  # still serving, with the idle/slow ones held
        for uid in acked:
            rows = query(node.index, "SELECT path FROM instances WHERE sop_instance_uid=:u", u=uid)
            assert len(rows) == 1, uid
            assert dcmread(rows[0][0]).SOPInstanceUID == uid
        for s in held:
            with contextlib.suppress(OSError):
                s.close()
        held.clear()
        rss = probe.settle(lambda: probe.rss_kb(node.pid), rss0, 50 * 1024, timeout=40)
        assert rss - rss0 <= 50 * 1024, f"RSS {rss0 // 1024} MB -> {rss // 1024} MB"
        assert probe.echo_ok(node.port)
    finally:
        for s in held:
            s.close()
        assert node.stop() == 0, node.log()[-3000:]
