"""The instance store's durable steps and the recorder's commit hook, on a real filesystem
and a real SQLite index."""

from __future__ import annotations

import errno
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy import func, select

import dicom_node.index.tables  # noqa: F401  (registers the tables)
from dicom_node.db import Database, sqlite_url, utcnow
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.index.tables import Group, Instance
from dicom_node.settings.node import AETitleSettings
from dicom_node.store.errors import StoreError
from dicom_node.store.writer import InstanceStore


def _spool(store: InstanceStore, data: bytes) -> Path:
    path = store.incoming / "part.dcm"
    path.write_bytes(data)
    return path


def test_place_renames_after_the_background_fsync(store: InstanceStore) -> None:
    spooled = _spool(store, b"x" * 70_000)
    final = store.path_for("1.2", "1.2.3", "1.2.3.4")
    placed = store.place(spooled, final)
    placed.wait_durable()
    assert placed.size == 70_000 and final.read_bytes() == b"x" * 70_000
    assert not spooled.exists()
    # An existing file is replaced.
    again = store.place(_spool(store, b"yz"), final)
    again.wait_durable()
    assert again.size == 2 and final.read_bytes() == b"yz"


def test_place_fails_cleanly_when_the_fsync_failed(store: InstanceStore) -> None:
    missing = store.incoming / "gone.dcm"
    final = store.path_for("1.2", "1.2.3", "1.2.3.5")
    with pytest.raises(StoreError, match="1.2.3.5"):
        store.place(missing, final)
    assert not final.exists()


def _fsyncs_fail(store: InstanceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # A failing fsync (EIO) cannot be caused on a healthy disk: its future is made here.
    def failed(path: Path | str, *, wait_start: float | None = None) -> Future[None]:
        future: Future[None] = Future()
        future.set_exception(OSError(errno.EIO, "Input/output error"))
        return future

    def fail_now(path: Path | str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store.fsyncs, "sync_later", failed)
    monkeypatch.setattr(store.fsyncs, "sync_now", fail_now)


def test_a_new_name_is_linked_before_the_fsync_and_durable_only_after_it(
    store: InstanceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    spooled = _spool(store, b"new")
    final = store.path_for("1.2", "1.2.3", "1.2.3.6")
    _fsyncs_fail(store, monkeypatch)
    placed = store.place(spooled, final)
    assert final.read_bytes() == b"new" and not spooled.exists()  # linked at once
    with pytest.raises(StoreError, match="Input/output error"):
        placed.wait_durable()  # ... but the caller learns it never became durable


def test_an_existing_file_is_replaced_only_once_the_new_one_is_on_disk(
    store: InstanceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = store.path_for("1.2", "1.2.3", "1.2.3.7")
    store.place(_spool(store, b"accepted"), final).wait_durable()
    spooled = _spool(store, b"replacement")
    _fsyncs_fail(store, monkeypatch)
    with pytest.raises(StoreError, match="Input/output error"):
        store.place(spooled, final)
    assert final.read_bytes() == b"accepted" and spooled.read_bytes() == b"replacement"


def test_place_copies_a_file_from_another_directory(store: InstanceStore, tmp_path: Path) -> None:
    elsewhere = tmp_path / "tmp.dcm"  # e.g. pynetdicom's own temp file
    elsewhere.write_bytes(b"abc" * 1000)
    final = store.path_for("1.2", "1.2.3", "1.2.3.6")
    placed = store.place(elsewhere, final)
    placed.wait_durable()
    assert final.read_bytes() == b"abc" * 1000 and placed.size == 3000
    assert elsewhere.exists()  # the caller's file is left to its owner
    assert not list(store.incoming.iterdir())


def test_open_removes_leftovers_and_counts_only_half_written_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "half.dcm").write_bytes(b"partial")
    (incoming / "ready1.dcm").touch()
    (incoming / "ready2.dcm").touch()
    with caplog.at_level(logging.WARNING):
        InstanceStore(tmp_path / "data").open()
    assert not list(incoming.iterdir())
    assert "removed 1 half-written file(s)" in caplog.text


def test_a_worker_opening_the_nodes_store_leaves_its_incoming_files_alone(
    tmp_path: Path,
) -> None:
    node = InstanceStore(tmp_path / "data")
    node.open()
    try:
        spooled, fd = node.spool_file()  # a STOW-RS part being received
        os.write(fd, b"DICM")
        os.close(fd)
        InstanceStore(tmp_path / "data").open(owner=False)  # as jobs/worker.py does
        final = node.path_for("1.2", "1.2.3", "1.2.3.4")
        node.place(spooled, final).wait_durable()
        assert final.read_bytes() == b"DICM"
    finally:
        node.close()


def _header(sop: str) -> InstanceHeader:
    return InstanceHeader(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid=sop,
        study_uid="1.2.9",
        series_uid="1.2.9.1",
        modality="CT",
    )


def test_record_commits_nothing_when_before_commit_fails(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "index.db"))
    db.create_all()
    recorder = Recorder(db, lambda title: AETitleSettings(ae_title=title))
    receipt = Receipt(
        called_ae="NODE",
        calling_ae="SCU",
        peer_address="127.0.0.1",
        transfer_syntax="1.2.840.10008.1.2.1",
        path="/x/1.dcm",
        size=10,
        received_at=utcnow(),
    )

    def disk_failed() -> None:
        raise StoreError(5, "cannot store 1.dcm: Input/output error")

    try:
        with pytest.raises(StoreError):
            recorder.record(_header("1.2.9.1.1"), receipt, before_commit=disk_failed)
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Instance)) == 0
            assert s.scalar(select(func.count()).select_from(Group)) == 0
        # The next instance of the same study opens the group as if nothing happened.
        calls = []
        rec = recorder.record(_header("1.2.9.1.2"), receipt, before_commit=lambda: calls.append(1))
        assert calls == [1] and rec.new_group
        with db.session() as s:
            assert s.scalar(select(Group.instance_count)) == 1
            assert [i.sop_instance_uid for i in s.scalars(select(Instance))] == ["1.2.9.1.2"]
    finally:
        recorder.close()
        db.dispose()


def test_a_queued_fsync_of_the_same_file_or_directory_is_shared(store: InstanceStore) -> None:
    """While the fsync threads are busy, a second request for the same directory joins
    the queued fsync (it has not started, so it covers both changes); another file, or
    the same name once it is another file, gets its own."""
    release = threading.Event()
    pool = store.fsyncs._sync_pool()
    busy = [pool.submit(release.wait) for _ in range(pool._max_workers)]
    try:
        directory = store.instances
        first = store.fsyncs.sync_later(directory, wait_start=0)
        assert store.fsyncs.sync_later(directory, wait_start=0) is first
        spooled = _spool(store, b"a")
        for_file = store.fsyncs.sync_later(spooled, wait_start=0)
        assert for_file is not first
        spooled.unlink()
        assert store.fsyncs.sync_later(_spool(store, b"b"), wait_start=0) is not for_file
        assert not first.done()
    finally:
        release.set()
    first.result(timeout=10)
    for_file.result(timeout=10)
    assert all(b.result(timeout=10) for b in busy)
    started = store.fsyncs.sync_later(store.instances)  # nothing queued: a fresh fsync
    assert started is not first
    started.result(timeout=10)


def test_a_directory_another_creates_first_is_durable_before_ensure_dir_returns(
    store: InstanceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two receivers (threads or node processes) create the same new series directory:
    the one whose mkdir finds it there must not return before the directory's name is
    durable, since it acknowledges its instance without waiting for the other's fsync
    of the study directory. Whether the other's fsync completed cannot be chosen in a
    real race: here "the other" creates the directory just before mkdir and never
    fsyncs (os.fsync is wrapped to see what each fsync covers)."""
    series = store.path_for("1.2", "1.2.3", "1").parent
    store.ensure_dir(series.parent)
    real_mkdir, real_fsync = Path.mkdir, os.fsync
    synced: list[tuple[int, bool]] = []  # (inode fsynced, did the series exist then)

    def mkdir(self: Path, *args: object, **kw: object) -> None:
        if self == series:
            real_mkdir(self)  # the other receiver wins
        real_mkdir(self, *args, **kw)

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append((os.fstat(fd).st_ino, series.is_dir()))

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "fsync", fsync)
    store.ensure_dir(series)
    assert (series.parent.stat().st_ino, True) in synced


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fsyncs_waiting_for_a_thread_hold_at_most_max_queued_fsyncs_files(
    tmp_path: Path,
) -> None:
    """An fsync started ahead (a STOW-RS part as it ends) holds its file open until a
    thread takes it: with the threads busy, each of 100 parts held one (2,000 tiny parts
    under ulimit -n 64 ran the node out of descriptors). Beyond ``max_queued_fsyncs``
    none is started; the file is fsynced by name when it is placed, before it counts as
    durable."""
    store = InstanceStore(tmp_path / "data", max_queued_fsyncs=8)
    store.open()
    release = threading.Event()
    pool = store.fsyncs._sync_pool()
    busy = [pool.submit(release.wait) for _ in range(pool._max_workers)]
    try:
        before = _open_files()
        spooled = []
        for i in range(100):
            path = store.incoming / f"{i}.stow"
            path.write_bytes(b"part %d" % i)
            spooled.append((path, store.fsyncs.sync_ahead(path, wait_start=0)))
        assert _open_files() - before <= 8
        assert sum(synced is not None for _, synced in spooled) == 8
    finally:
        release.set()
    assert all(b.result(timeout=10) for b in busy)
    for i, (path, synced) in enumerate(spooled):
        final = store.path_for("1.2", "1.2.3", f"1.2.3.{i}")
        store.place(path, final, synced).wait_durable()
        assert final.read_bytes() == b"part %d" % i
    store.close()
    assert _open_files() <= before
