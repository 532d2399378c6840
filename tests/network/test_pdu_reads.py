"""How the node reads a PDU's body (``dicom_node.network.guard._recv_pdu``) against a real
node over raw sockets: a body that arrives in small pieces is stored byte for byte, and
with no maximum PDU size configured (``max_pdu_bytes: 0``) a lying length makes the node
hold only what actually arrived. Run with the pynetdicom tweaks on and off."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.network import pdus, probe
from tests.network.nodes import TWEAK_MODES, start_node
from tests.support.node_process import NodeProcess
from tests.support.waiting import wait_for

MB = 1024  # kB


@pytest.fixture(scope="module", params=TWEAK_MODES, ids=lambda m: f"tweaks={m}")
def unlimited_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    """A node that accepts PDUs of any length (``max_pdu_bytes: 0``)."""
    node = start_node(tmp_path_factory.mktemp("unlimited"), request.param, max_pdu_bytes=0)
    yield node
    assert node.stop() == 0, node.log()[-5000:]


def _ct(rows: int) -> pydicom.Dataset:
    ds = pdus.small_ct()
    ds.Rows = ds.Columns = rows
    ds.PixelData = bytes(range(256)) * (rows * rows * 2 // 256)
    return ds


def _stored(node: NodeProcess, ds: pydicom.Dataset) -> Path:
    found: list[Path] = []

    def indexed() -> bool:
        found[:] = (node.data_dir / "instances").rglob(f"{ds.SOPInstanceUID}.dcm")
        return bool(found)

    wait_for(indexed, 10, "the stored file", node.log)
    return found[0]


def _trickle(sock, data: bytes, piece: int, pause: float) -> None:  # type: ignore[no-untyped-def]
    for at in range(0, len(data), piece):
        sock.sendall(data[at : at + piece])
        time.sleep(pause)


@pytest.mark.parametrize("tweaks", TWEAK_MODES)
def test_a_dataset_arriving_in_pieces_is_stored_byte_for_byte(tmp_path: Path, tweaks: str) -> None:
    node = start_node(tmp_path / "node", tweaks)
    try:
        ds = _ct(640)  # an 820 kB dataset in one P-DATA, below the 1 MiB maximum
        command, dataset = pdus.c_store(ds)
        with pdus.connect(node.port) as sock:
            sock.sendall(pdus.associate_rq())
            reader = pdus.read_pdus(sock)
            assert next(reader).kind == pdus.A_ASSOCIATE_AC
            sock.sendall(command)
            _trickle(sock, dataset, 50_000, 0.01)  # many partial reads of one body
            sock.sendall(pdus.RELEASE_RQ)
            got = list(reader)
        assert pdus.store_statuses(got) == [0x0000], got
        stored = pydicom.dcmread(_stored(node, ds))
        assert stored.PixelData == ds.PixelData
        assert stored.SOPInstanceUID == ds.SOPInstanceUID
    finally:
        assert node.stop() == 0, node.log()[-5000:]


def test_unlimited_pdus_are_received_whole(unlimited_node: NodeProcess) -> None:
    node = unlimited_node
    ds = _ct(800)  # 1.28 MB in one P-DATA: read in pieces, no maximum to allocate up to
    got = pdus.exchange_associated(node.port, *pdus.c_store(ds), pdus.RELEASE_RQ)
    assert pdus.store_statuses(got) == [0x0000], got
    assert pydicom.dcmread(_stored(node, ds)).PixelData == ds.PixelData


def test_unlimited_lying_length_holds_only_what_arrived(unlimited_node: NodeProcess) -> None:
    node = unlimited_node
    rss0, fds0, threads0 = probe.baseline(node)
    ds = pdus.small_ct()
    socks = []
    for _ in range(4):
        sock = pdus.connect(node.port)
        sock.sendall(pdus.associate_rq())
        assert next(pdus.read_pdus(sock)).kind == pdus.A_ASSOCIATE_AC
        sock.sendall(pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x03, pdus.store_command(ds))))
        # A P-DATA claiming 1 GiB, then 64 kB of it, then silence.
        claimed = 1 << 30
        sock.sendall(b"\x04\x00" + claimed.to_bytes(4, "big") + b"\0" * 65536)
        socks.append(sock)
    time.sleep(1.0)
    grown = probe.rss_kb(node.pid) - rss0
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()
    assert grown <= 16 * MB, f"RSS grew {grown} kB for 4 x 64 kB received"
    assert probe.echo_ok_within(node.port), node.log()[-3000:]
    assert probe.settle(lambda: probe.fds(node.pid), fds0, 2) <= fds0 + 2
    assert probe.settle(lambda: probe.threads(node.pid), threads0, 2) <= threads0 + 2
    assert not list((node.data_dir / "instances").rglob(f"{ds.SOPInstanceUID}*"))
