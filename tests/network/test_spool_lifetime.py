"""Every received dataset's spool file is consumed or removed when its association ends.

pynetdicom opens a file for each C-STORE dataset as soon as the command has arrived
(:mod:`dicom_node.network.spool`), but hands it to the node's handler only when the
request is valid, of a Storage SOP class, and served before the association ends. Each
case below is a way a peer can make it drop the request instead; afterwards, once the
node has ended the association, nothing of it may be left in ``incoming/`` (spool tweak
on) or in the node's TMPDIR (off), and the node keeps serving. Raw sockets against a real
node, with the pynetdicom tweaks on and off.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info

from dicom_node.network.spool import MAX_UNSERVED
from dicom_node.store.origin import DIMSE, Origin, origin_of
from tests.network import pdus, probe
from tests.support.index import query
from tests.support.node_process import NodeProcess

C_STORE_RSP = 0x8001


def _store(ds: Dataset, **command: object) -> list[bytes]:
    """A C-STORE of ``ds`` whose command is built by hand (see pdus.raw_store_command)."""
    sop_class = str(command.pop("sop_class", ds.SOPClassUID))
    raw = pdus.raw_store_command(sop_class, ds.SOPInstanceUID, **command)  # type: ignore[arg-type]
    return pdus.c_store(ds, raw)


def _half(ds: Dataset) -> list[bytes]:
    """A C-STORE command and the first part of its dataset (more fragments announced)."""
    data = pdus.dataset_bytes(ds)
    return [
        pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x03, pdus.store_command(ds))),
        pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x00, data[: len(data) // 2])),
    ]


def _echo_and_store(ds: Dataset) -> list[bytes]:
    """A C-ECHO and a whole C-STORE in one write, then A-RELEASE-RQ at once: the C-STORE
    waits in pynetdicom's queue while the C-ECHO is served."""
    echo = pdus.p_data(pdus.pdv(pdus.ECHO_CX, 0x03, pdus.echo_command()))
    return [echo + b"".join(pdus.c_store(ds)) + pdus.RELEASE_RQ]


# name -> (the PDUs to send, from three datasets, once the association is accepted;
#          whether the node must abort)
CASES: dict[str, tuple[Callable[[list[Dataset]], list[bytes]], bool]] = {
    # A request without a Message ID is not a valid request: pynetdicom drops it unanswered.
    "invalid_request": (lambda ds: [*_store(ds[0], message_id=None), pdus.RELEASE_RQ], False),
    # Not a Storage SOP class: pynetdicom finds no service for it and aborts.
    "non_storage_sop_class": (
        lambda ds: [*_store(ds[0], sop_class="1.2.3.4.5"), pdus.RELEASE_RQ],
        True,
    ),
    # A command that does not convert into a request (Priority 9): a DIMSE decode error.
    "undecodable_command": (lambda ds: [*_store(ds[0], priority=9), pdus.RELEASE_RQ], True),
    # More requests than negotiated (one at a time), then an end before they are answered.
    "pipelined_then_abort": (
        lambda ds: [*pdus.c_store(ds[0]), *pdus.c_store(ds[1]), pdus.ABORT_RQ],
        False,
    ),
    "pipelined_then_release": (
        lambda ds: [
            *pdus.c_store(ds[0]),
            *pdus.c_store(ds[1]),
            *pdus.c_store(ds[2]),
            pdus.RELEASE_RQ,
        ],
        False,
    ),
    "echo_and_store_then_release": (lambda ds: _echo_and_store(ds[0]), False),
    # Half a dataset, then A-ABORT, or a new command before the dataset's last fragment.
    "half_dataset_then_abort": (lambda ds: [*_half(ds[0]), pdus.ABORT_RQ], False),
    "half_dataset_then_new_command": (lambda ds: [*_half(ds[0]), *pdus.c_store(ds[0])], True),
}


def _assert_nothing_left(
    node: NodeProcess, before: list[Path], sop_uids: list[str], answered: list[int]
) -> None:
    probe.wait_associations_closed(node)
    left = sorted(set(probe.spool_leftovers(node)) - set(before))
    assert left == [], node.log()[-3000:]
    stored = {
        uid
        for uid in sop_uids
        if query(node.index, "SELECT id FROM instances WHERE sop_instance_uid=:u", u=uid)
    }
    # An instance answered Success is indexed (one stored but never answered may be too).
    assert len(stored) >= answered.count(0)
    assert probe.echo_ok_within(node.port), node.log()[-3000:]


@pytest.mark.parametrize("case", list(CASES))
def test_dropped_requests_leave_no_spool_file(hostile_node: NodeProcess, case: str) -> None:
    node = hostile_node
    probe.baseline(node)
    make, aborts = CASES[case]
    before = probe.spool_leftovers(node)  # another case's failure is not this one's
    datasets = [pdus.small_ct() for _ in range(3)]
    got = pdus.exchange_associated(node.port, *make(datasets), timeout=20)
    assert got[0].kind == pdus.A_ASSOCIATE_AC, got
    if aborts:
        assert got[-1].kind == pdus.A_ABORT, [p.kind for p in got]
    uids = [ds.SOPInstanceUID for ds in datasets]
    _assert_nothing_left(node, before, uids, pdus.store_statuses(got, C_STORE_RSP))


def test_peer_closing_mid_dataset_leaves_no_spool_file(hostile_node: NodeProcess) -> None:
    node = hostile_node
    probe.baseline(node)
    before = probe.spool_leftovers(node)
    ds = pdus.small_ct()
    with pdus.connect(node.port) as sock:
        sock.sendall(pdus.associate_rq())
        assert next(pdus.read_pdus(sock)).kind == pdus.A_ASSOCIATE_AC
        for chunk in _half(ds):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_RDWR)
    _assert_nothing_left(node, before, [ds.SOPInstanceUID], [])


INVALID_STORES = 200  # requests pynetdicom drops, sent on one association


def test_dropped_requests_on_one_association_stay_bounded(hostile_node: NodeProcess) -> None:
    """A peer that keeps one association open and sends C-STOREs pynetdicom drops (no
    Message ID) would make the node hold a spool file, and its fd, for each until the
    association ends. The node holds at most ``MAX_UNSERVED`` of them, then aborts."""
    node = hostile_node
    _, fds_before, _ = probe.baseline(node)
    before = set(probe.spool_leftovers(node))
    invalid = b"".join(_store(pdus.small_ct(), message_id=None))
    echo = pdus.p_data(pdus.pdv(pdus.ECHO_CX, 0x03, pdus.echo_command()))
    held, fd_peak, sent, aborted = 0, 0, 0, False
    with pdus.connect(node.port) as sock:
        sock.sendall(pdus.associate_rq())
        reader = pdus.read_pdus(sock, 20)
        assert next(reader).kind == pdus.A_ASSOCIATE_AC
        while sent < INVALID_STORES and not aborted:
            try:
                sock.sendall(invalid + echo)
            except (BrokenPipeError, ConnectionResetError):
                aborted = True
                break
            sent += 1
            # The C-ECHO is served after the request before it: once its response is
            # here, pynetdicom has dropped that request.
            got = next(reader, None)
            if got is None or got.kind == pdus.A_ABORT:
                aborted = True
                break
            assert got.kind == pdus.P_DATA_TF, got
            held = max(held, len(set(probe.spool_leftovers(node)) - before))
            fd_peak = max(fd_peak, probe.fds(node.pid))
    assert aborted, f"{sent} dropped requests held ({held} files, fds {fds_before}->{fd_peak})"
    assert sent <= MAX_UNSERVED + 1
    assert held <= MAX_UNSERVED
    assert fd_peak <= fds_before + MAX_UNSERVED + 4, (fds_before, fd_peak)
    _assert_nothing_left(node, sorted(before), [], [])


def test_a_received_instance_has_an_origin_record_and_no_ae_titles_in_its_file_meta(
    hostile_node: NodeProcess,
) -> None:
    """Tweaks on and off, where a C-STORE came from is in the node's origin record
    (reconciliation reads it back, tests/store), not in the File Meta, which records no
    AE titles (no hook adds them)."""
    node = hostile_node
    ds = pdus.small_ct()
    assert probe.store_ok(node.port, ds)  # calling AE "PROBE"
    ((path,),) = query(
        node.index, "SELECT path FROM instances WHERE sop_instance_uid=:u", u=ds.SOPInstanceUID
    )
    assert origin_of(Path(path)) == Origin(DIMSE, "DICOM_NODE", "PROBE", "127.0.0.1")
    meta = read_file_meta_info(path)
    assert "SendingApplicationEntityTitle" not in meta
    assert "ReceivingApplicationEntityTitle" not in meta
    assert "SourceApplicationEntityTitle" not in meta
