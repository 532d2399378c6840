"""Origin records (dicom_node/store/origin.py) on real files: who owns a series, which
instance needs a record of its own, undo, and names no hostile UID can make collide.
The node-level checks (STOW-RS forging its File Meta, kill -9, restart) are in
test_reconcile_origin.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dicom_node.index.tables  # noqa: F401  (registers the tables)
from dicom_node.db import Database, sqlite_url, utcnow
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.settings.node import AETitleSettings
from dicom_node.store.intake import Intake
from dicom_node.store.origin import (
    OriginError,
    OriginRecords,
    instance_record,
    origin_of,
    series_record,
)
from dicom_node.store.writer import InstanceStore, safe_component
from tests.store.support import MODX, WEB


@pytest.fixture
def store(tmp_path: Path) -> InstanceStore:
    s = InstanceStore(tmp_path / "store")
    s.open()
    return s


def _place(path: Path) -> None:
    """An instance file at ``path`` (what InstanceStore.place leaves)."""
    path.write_bytes(b"DICM")


def test_first_origin_owns_the_series_and_another_gets_records_per_instance(
    store: InstanceStore,
) -> None:
    records = OriginRecords(store)
    a, b, c = (store.path_for("1.2", "1.2.3", f"1.2.3.{i}") for i in range(3))
    for path, origin in ((a, MODX), (b, WEB), (c, MODX)):
        noted = records.note(path, origin)
        assert (noted.record is not None) == (origin is WEB)
        _place(path)
    series = a.parent
    assert sorted(p.name for p in series.iterdir()) == sorted(
        ["origin.json", a.name, b.name, c.name, instance_record(b).name]
    )
    assert [origin_of(p) for p in (a, b, c)] == [MODX, WEB, MODX]
    # A fresh process (cache empty) reads the same owner back.
    assert OriginRecords(store).note(store.path_for("1.2", "1.2.3", "1.2.3.9"), MODX).record is None


def test_a_series_started_by_the_web_source_keeps_a_dimse_peer_apart(
    store: InstanceStore,
) -> None:
    """The reverse collision: a STOW-RS client creates the series first (it may know a
    modality's predictable UIDs); the C-STOREd instances are recorded as MODX's."""
    records = OriginRecords(store)
    web, dimse = store.path_for("9", "9.1", "9.1.1"), store.path_for("9", "9.1", "9.1.2")
    records.note(web, WEB)
    records.note(dimse, MODX)
    _place(web)
    _place(dimse)
    assert origin_of(web) == WEB and origin_of(dimse) == MODX


def test_a_stale_record_of_another_origin_is_overwritten_and_undo_restores_it(
    store: InstanceStore,
) -> None:
    records = OriginRecords(store)
    owner = store.path_for("1", "1.1", "1.1.1")
    records.note(owner, MODX)
    path = store.path_for("1", "1.1", "1.1.2")
    first = records.note(path, WEB)  # a web copy whose placement failed: undone
    first.undo()
    assert not instance_record(path).exists()
    records.note(path, WEB)  # placed, then a crash: its record stays
    _place(path)
    again = records.note(path, MODX)  # the owner's copy replaces it
    assert origin_of(path) == MODX
    again.undo()  # ... but was not placed after all: the web copy is still there
    assert origin_of(path) == WEB


def test_missing_or_foreign_records_give_no_origin(store: InstanceStore) -> None:
    path = store.path_for("5", "5.1", "5.1.1")
    path.parent.mkdir(parents=True)
    _place(path)
    with pytest.raises(OriginError):
        origin_of(path)
    for data in (
        b"",
        b"[]",
        b'{"version": 1}',
        b'{"version": 2, "kind": "dimse", "called_ae": "A", "calling_ae": "B",'
        b' "peer_address": null}',
        b'{"version": 1, "kind": "root", "called_ae": "A", "calling_ae": "B",'
        b' "peer_address": null}',
        b'{"version": 1, "kind": "dimse", "called_ae": 1, "calling_ae": "B", "peer_address": null}',
        MODX.encode() + b" " * 5000,
        b"[" * 4000,
        b"\xff\xfe",
    ):
        series_record(path.parent).write_bytes(data)
        with pytest.raises(OriginError):
            origin_of(path)
    # An unusable series record: each instance gets a record of its own.
    records = OriginRecords(store)
    other = store.path_for("5", "5.1", "5.1.2")
    assert records.note(other, MODX).record == instance_record(other)
    _place(other)
    assert origin_of(other) == MODX


HOSTILE = [
    "origin",
    "origin.json",
    "1.2.3.origin",
    ".",
    "..",
    "",
    "x" + hashlib.sha256(b"origin").hexdigest(),
    safe_component("1.2.abc"),
    "1.2/../3",
]


@settings(max_examples=200, deadline=None)
@given(
    uids=st.lists(
        st.one_of(
            st.sampled_from(HOSTILE),
            st.text(alphabet="0123456789.", min_size=1, max_size=64),
            st.text(max_size=70),
        ),
        min_size=3,
        max_size=8,
        unique=True,
    )
)
def test_no_uid_makes_records_collide(uids: list[str]) -> None:
    """Instance files, their records and series records are all different paths for
    different UIDs (series and SOP UIDs drawn from the same hostile set), and each
    record stays in its own series' directory."""
    root = InstanceStore(Path("/store"))
    study = uids[0]
    paths = [root.path_for(study, series, sop) for series in uids for sop in uids]
    records = [instance_record(p) for p in paths]
    series = {series_record(p.parent) for p in paths}
    everything = paths + records + sorted(series)
    assert len(set(everything)) == len(everything)
    assert all(r.parent == p.parent for r, p in zip(records, paths, strict=True))
    assert all(p.parent.parent.parent == root.instances for p in paths)
    assert not any(r.name.endswith(".dcm") for r in [*records, *series])


def test_a_hostile_series_uid_gets_its_own_owner(store: InstanceStore) -> None:
    records = OriginRecords(store)
    placed = []
    for i, series in enumerate(HOSTILE):
        path = store.path_for("1.9", series, f"1.9.{i}")
        records.note(path, WEB if i % 2 else MODX)
        _place(path)
        placed.append(path)
    assert [origin_of(p) for p in placed] == [WEB if i % 2 else MODX for i in range(len(HOSTILE))]


def test_a_record_is_durable_before_its_instance_is_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the receive path's Intake: before the index row of the first instance of
    a series (and of an instance of another origin) commits, its record's content was
    fsynced and the series directory fsynced after the record's name was there. A power
    loss cannot be caused here: os.fsync is wrapped to see what each fsync covers."""
    store = InstanceStore(tmp_path / "data")
    store.open()
    db = Database(sqlite_url(tmp_path / "index.db"))
    db.create_all()
    recorder = Recorder(db, lambda title: AETitleSettings(ae_title=title))
    intake = Intake(store, recorder, "keep_first")
    series = store.path_for("1.2.9", "1.2.9.1", "1").parent
    seen: list[tuple[int, tuple[str, ...]]] = []  # (inode fsynced, series dir's names)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        st = os.fstat(fd)
        seen.append((st.st_ino, tuple(sorted(os.listdir(series))) if series.is_dir() else ()))

    def indexed(sop: str) -> tuple[str, tuple[str, ...], set[int]]:
        """When the row of ``sop`` commits: the series dir's names at its last fsync,
        and every inode fsynced so far."""
        ino = series.stat().st_ino
        dir_syncs = [names for i, names in seen if i == ino]
        return sop, dir_syncs[-1] if dir_syncs else (), {i for i, _ in seen}

    commits = []
    record = recorder.record

    def record_then_note(header: InstanceHeader, receipt: Receipt, **kw: object) -> object:
        commits.append(indexed(header.sop_instance_uid))
        return record(header, receipt, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(recorder, "record", record_then_note)
    try:
        for sop, calling in (("1.2.9.1.1", "MODX"), ("1.2.9.1.2", "OTHER")):
            spooled = store.incoming / f"{sop}.part"
            spooled.write_bytes(b"DICM" * 100)
            receipt = Receipt("NODE", calling, "10.0.0.7", "1.2.840.10008.1.2.1", "", 0, utcnow())
            header = InstanceHeader(
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                sop_instance_uid=sop,
                study_uid="1.2.9",
                series_uid="1.2.9.1",
                modality="CT",
            )
            assert intake.keep(spooled, header, receipt) == "stored"
    finally:
        recorder.close()
        db.dispose()
        store.close()
    first, second = commits
    assert "origin.json" in first[1] and "1.2.9.1.1.dcm" in first[1]
    assert (series / "origin.json").stat().st_ino in first[2]
    assert "1.2.9.1.2.origin.json" in second[1] and "1.2.9.1.2.dcm" in second[1]
    assert (series / "1.2.9.1.2.origin.json").stat().st_ino in second[2]
    assert origin_of(series / "1.2.9.1.2.dcm").calling_ae == "OTHER"
    assert origin_of(series / "1.2.9.1.1.dcm").calling_ae == "MODX"
