"""The guarded pynetdicom tweaks: socket reads, spooling C-STOREs and serving them on the
DUL thread."""

from __future__ import annotations

import contextlib
import copy
import os
import queue
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage, Verification

from dicom_node.index.header import parse_header
from dicom_node.network import contexts, inline, responses, spool
from dicom_node.synthetic import iter_ct_series
from tests.support.ports import free_port
from tests.support.studies import spooled_data
from tests.support.waiting import wait_until


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[tuple[int, list[Any], Path]]:
    """A pynetdicom SCP with the node's tweaks and its handler's view of each C-STORE
    (the spooled path and its bytes)."""
    assert spool.install()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    seen: list[Any] = []

    def on_store(event: evt.Event) -> int:
        path = Path(event.dataset_path)
        seen.append((path, path.read_bytes(), threading.current_thread()))
        return 0x0000

    def on_echo(event: evt.Event) -> int:
        seen.append(("echo", b"", threading.current_thread()))
        return 0x0000

    def on_requested(event: evt.Event) -> None:
        assert inline.serve_inline(event.assoc)

    ae = AE(ae_title="TWEAKED")
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    spool.register(ae, incoming)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[
            (evt.EVT_C_STORE, on_store),
            (evt.EVT_C_ECHO, on_echo),
            (evt.EVT_REQUESTED, on_requested),
        ],
    )
    try:
        yield port, seen, incoming
    finally:
        server.shutdown()
        spool.unregister(ae)


@contextlib.contextmanager
def _associate(port: int) -> Iterator[Any]:
    """An established association (C-ECHO and CT storage) to the tweaked SCP, released
    afterwards."""
    ae = AE(ae_title="SCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="TWEAKED")
    assert assoc.is_established
    try:
        yield assoc
    finally:
        assoc.release()


def test_c_store_is_spooled_into_the_registered_directory(
    scp: tuple[int, list[Any], Path],
) -> None:
    port, seen, incoming = scp
    datasets = list(iter_ct_series(3, rows=64, cols=64))
    with _associate(port) as assoc:
        assert [assoc.send_c_store(ds).Status for ds in datasets] == [0, 0, 0]
    assert [p.parent for p, _, _ in seen] == [incoming] * 3
    # pynetdicom removed them after the handler; empty ones wait for the next C-STORE
    assert not spooled_data(incoming)
    assert len(list(incoming.iterdir())) <= spool.READY_FILES
    for (path, data, _), ds in zip(seen, datasets, strict=True):
        offset = spool.dataset_offset(data[:144])
        copy = path.with_name("copy.dcm")
        copy.write_bytes(data)
        back = dcmread(copy)
        assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert back.PixelData == ds.PixelData
        header = parse_header(data[offset:], back.file_meta.TransferSyntaxUID)
        assert header.sop_instance_uid == ds.SOPInstanceUID
        copy.unlink()


def test_c_stores_are_served_on_the_dul_thread_other_requests_as_before(
    scp: tuple[int, list[Any], Path],
) -> None:
    from pynetdicom.association import Association
    from pynetdicom.dul import DULServiceProvider

    port, seen, _ = scp
    datasets = list(iter_ct_series(3, rows=64, cols=64))
    with _associate(port) as assoc:
        statuses = [assoc.send_c_echo().Status]
        statuses += [assoc.send_c_store(ds).Status for ds in datasets]
        statuses.append(assoc.send_c_echo().Status)
    assert statuses == [0] * 5
    threads = [type(thread) for _, _, thread in seen]
    assert threads == [Association, *[DULServiceProvider] * 3, Association]


class _Acceptor(SimpleNamespace):
    """What the inline queue reads of an association; ``served`` collects its requests."""

    def _serve_request(self, primitive: Any, context_id: int) -> None:
        self.served.append((context_id, primitive))


def _store_request(message_id: int = 1) -> C_STORE:
    req = C_STORE()
    req.MessageID = message_id
    req.AffectedSOPClassUID = CTImageStorage
    req.AffectedSOPInstanceUID = "1.2.3.4"
    req.Priority = 0
    req.DataSet = BytesIO(b"\0")
    return req


def test_inline_queue_serves_only_when_nothing_else_is_in_service() -> None:
    from pynetdicom.dimse_primitives import C_ECHO

    assoc = _Acceptor(
        dul=threading.current_thread(),
        _accepted_cx={1: object()},
        is_established=True,
        _sent_release=False,
        served=[],
    )
    q = inline._InlineQueue(assoc)
    req = _store_request()
    q.put((1, req))
    assert assoc.served == [(1, req)] and q.empty()  # served where it was put
    echo = C_ECHO()
    echo.MessageID = 2
    echo.AffectedSOPClassUID = Verification
    q.put((1, echo))
    assert q.qsize() == 1  # not a C-STORE: the association thread serves it
    assert q.get(block=False) == (1, echo)
    q.put((1, _store_request(3)))  # the association thread may still be serving the echo
    assert len(assoc.served) == 1 and q.qsize() == 1
    q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(block=False)  # the association thread is back: the next one is inline
    q.put((1, _store_request(4)))
    assert len(assoc.served) == 2
    q.put((7, _store_request(5)))  # context not accepted: pynetdicom's own path
    assoc._sent_release = True
    q.put((1, _store_request(6)))  # during release: pynetdicom's own path
    assoc._sent_release = False
    other = threading.Thread(target=q.put, args=((1, _store_request(7)),))
    other.start()
    other.join()  # not the DUL thread: queued
    assert len(assoc.served) == 2 and q.qsize() == 3


def test_dataset_offset_rejects_non_dicom() -> None:
    with pytest.raises(ValueError):
        spool.dataset_offset(b"\0" * 200)
    head = b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + (90).to_bytes(4, "little")
    assert spool.dataset_offset(head) == 144 + 90


def test_spool_file_writes_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "received.dcm"
    f = spool.SpoolFile((path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)))
    parts = [b"a" * 100_000, bytearray(b"b" * 3), memoryview(b"c" * 70_000)]
    assert [f.write(p) for p in parts] == [100_000, 3, 70_000]
    f.file.flush()
    f.close()
    f.close()  # idempotent, as pynetdicom may close it again
    assert Path(f.name).read_bytes() == b"".join(bytes(p) for p in parts)


def test_spool_files_are_prepared_ahead_and_removed_on_unregister(tmp_path: Path) -> None:
    ae = AE(ae_title="READY")
    spool.register(ae, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing is created before the first C-STORE
    ready = spool._spools[ae]
    owner = _association(ae)
    first = ready.take(owner)
    wait_until(
        lambda: len(list(tmp_path.iterdir())) >= 1 + spool.READY_FILES,
        10,
        interval=0.01,
        describe=lambda: "no spool files prepared",
    )
    taken = [ready.take(owner) for _ in range(spool.READY_FILES + 2)]
    names = {f.name for f in [first, *taken]}
    assert len(names) == spool.READY_FILES + 3  # every C-STORE gets its own file
    for f in [first, *taken]:
        f.write(b"data")
        f.close()
        assert spool.claim(owner, f.name)  # the handler's from now on
    spool.unregister(ae)
    owner.stop.set()  # type: ignore[attr-defined]
    left = set(map(str, tmp_path.iterdir()))
    assert left == names  # the prepared, unused ones are gone; claimed ones are the handler's


def _association(ae: AE) -> threading.Thread:
    """A stand-in for a live association of ``ae``: a running thread (no DUL thread) that
    ends when its ``stop`` is set."""
    stop = threading.Event()
    owner = threading.Thread(target=stop.wait, args=(60,), daemon=True)
    owner.ae, owner.dul, owner.stop = ae, None, stop  # type: ignore[attr-defined]
    owner.start()
    return owner


def test_unclaimed_spool_files_go_when_their_association_ends(tmp_path: Path) -> None:
    ae = AE(ae_title="OWNED")
    spool.register(ae, tmp_path)
    ready = spool._spools[ae]
    try:
        owner = _association(ae)
        served, dropped = ready.take(owner), ready.take(owner)
        for f in (served, dropped):
            f.write(b"data")
        assert spool.claim(owner, served.name)
        assert spool.end_of_association(owner) == [dropped.name]
        assert Path(served.name).exists() and not Path(dropped.name).exists()
        assert spool.end_of_association(owner) == []  # release, abort and close all call it
        late = ready.take(owner)
        late.write(b"data")
        spool.end_of_association(owner)
        assert not spool.claim(owner, late.name)  # its handler must not store it
        owner.stop.set()  # type: ignore[attr-defined]
    finally:
        spool.unregister(ae)


def test_spool_files_of_an_association_whose_threads_ended_are_swept(tmp_path: Path) -> None:
    """An association that ends with no release, abort or close event (its DUL thread
    died): its unclaimed files go at the next sweep."""
    ae = AE(ae_title="SWEPT")
    spool.register(ae, tmp_path)
    try:
        owner = threading.Thread(target=lambda: None)
        owner.ae, owner.dul = ae, None  # type: ignore[attr-defined]
        owner.start()
        f = spool._spools[ae].take(owner)
        f.write(b"data")
        owner.join()
        wait_until(lambda: not Path(f.name).exists(), timeout=10)
    finally:
        spool.unregister(ae)


def test_presentation_contexts_copy_cheaply_and_independently() -> None:
    assert contexts.install()
    ae = AE()
    for cx in AllStoragePresentationContexts[:5]:
        ae.add_supported_context(
            cx.abstract_syntax, ALL_TRANSFER_SYNTAXES, scp_role=True, scu_role=False
        )
    original = ae.supported_contexts
    copied = copy.deepcopy(original)
    assert [vars(c) for c in copied] == [vars(c) for c in original]
    copied[0].context_id = 7
    copied[0].add_transfer_syntax("1.2.3.4")
    assert original[0].context_id is None
    assert "1.2.3.4" not in original[0].transfer_syntax
    assert copied[0].as_tuple.transfer_syntax == copied[0].transfer_syntax[0]


@pytest.mark.parametrize("uid", ["1.2.3", "1.2.34", "1" * 64])
@pytest.mark.parametrize("message_id", [1, 300, 65535])
@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xB000])
def test_memoised_store_response_is_pynetdicoms_encoding(
    uid: str, message_id: int, status: int
) -> None:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = CTImageStorage
    rsp.AffectedSOPInstanceUID = uid
    rsp.Status = status
    msg = C_STORE_RSP()
    msg.primitive_to_message(rsp)
    expected = encode(msg.command_set, True, True)
    assert responses.encoded_store_response(CTImageStorage, uid, message_id, status) == expected


def test_store_responses_reach_a_pynetdicom_scu_intact(monkeypatch: pytest.MonkeyPatch) -> None:
    assert responses.install()
    # As the node runs pynetdicom: no standard log handlers (they want message objects).
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "none")
    scp_ae = AE(ae_title="TWEAKED")
    scp_ae.add_supported_context(CTImageStorage, "1.2.840.10008.1.2.1")
    port = free_port()
    server = scp_ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)]
    )
    datasets = list(iter_ct_series(3, rows=16, cols=16))
    encoded_before = responses._around.cache_info()
    received: list[Any] = []
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="TWEAKED",
        evt_handlers=[
            (evt.EVT_DIMSE_RECV, lambda event: received.append(event.message.command_set))
        ],
    )
    assert assoc.is_established
    try:
        for i, ds in enumerate(datasets):
            assert assoc.send_c_store(ds, msg_id=300 + i).Status == 0x0000
    finally:
        assoc.release()
        server.shutdown()
    assert [
        (
            c.MessageIDBeingRespondedTo,
            c.AffectedSOPInstanceUID,
            c.AffectedSOPClassUID,
            c.CommandField,
            c.Status,
        )
        for c in received
    ] == [(300 + i, ds.SOPInstanceUID, CTImageStorage, 0x8001, 0) for i, ds in enumerate(datasets)]
    encoded_after = responses._around.cache_info()
    assert (
        encoded_after.hits + encoded_after.misses - encoded_before.hits - encoded_before.misses
    ) == 3  # the memoised path answered


def test_tweaks_install_idempotently() -> None:
    assert spool.install() and spool.install()
    assert responses.install() and responses.install()
    assert contexts.install() and contexts.install()
