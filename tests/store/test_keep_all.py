"""Intake.keep_all (a STOW-RS request's parts, a batch at a time, one index transaction)
gives each instance the outcome Intake.keep gives it one after the other: the same files,
rows, groups and origin records, on a real store and a real SQLite or PostgreSQL index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import text

from dicom_node.db import Database, sqlite_url, utcnow
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.settings.node import AETitleSettings
from dicom_node.store import intake as intake_module
from dicom_node.store.errors import StoreError
from dicom_node.store.intake import DUPLICATE, STORED, Arrival, Intake
from dicom_node.store.origin import DIMSE, STOWRS
from dicom_node.store.reconcile import read_stored
from dicom_node.store.writer import InstanceStore
from tests.store.support import write_part10
from tests.support import postgres as pg

CT = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class Side:
    """One store and index receiving the same arrivals."""

    store: InstanceStore
    db: Database
    recorder: Recorder
    intake: Intake

    def close(self) -> None:
        self.recorder.close()
        self.db.dispose()
        self.store.close()


def _side(root: Path, url: str, policy: str, recorder_class: type[Recorder] = Recorder) -> Side:
    store = InstanceStore(root)
    store.open()
    db = Database(url)
    db.create_all()
    recorder = recorder_class(db, lambda title: AETitleSettings(ae_title=title))
    return Side(store, db, recorder, Intake(store, recorder, policy))


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "a.sqlite"), sqlite_url(tmp_path / "b.sqlite")
    server: pg.PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(), server.create_database()


def _dataset(study: str, series: str, sop: str, modality: str, note: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientID = "P1"
    ds.PatientName = "Batch^Test"
    ds.StudyDate = "20261203"
    ds.Modality = modality
    ds.ImageComments = note  # copies of one instance differ in it
    return ds


# (study, series, sop, modality, note): the list one request would bring
ARRIVALS = [
    ("1.2.9.1", "1.2.9.1.1", "1.2.9.1.1.1", "CT", "first"),
    ("1.2.9.1", "1.2.9.1.1", "1.2.9.1.1.2", "CT", "first"),
    ("1.2.9.1", "1.2.9.1.2", "1.2.9.1.2.1", "SR", "first"),
    ("1.2.9.1", "1.2.9.1.1", "1.2.9.1.1.1", "CT", "a second copy in the same request"),
    ("1.2.9.2", "1.2.9.2.1", "1.2.9.2.1.1", "MR", "first"),
    ("1.2.9.1", "1.2.9.1.1", "1.2.9.1.1.9", "CT", "a new copy of an indexed one"),
    ("1.2.9.1", "1.2.9.1.1", "1.2.9.1.1.1", "CT", "a third copy"),
]
INDEXED_BEFORE = ("1.2.9.1", "1.2.9.1.1", "1.2.9.1.1.9", "CT", "indexed before")


def _arrivals(side: Side, rows: list[tuple[str, ...]], tag: str) -> list[Arrival]:
    out = []
    for n, (study, series, sop, modality, note) in enumerate(rows):
        path = side.store.incoming / f"{tag}-{n}.part"
        write_part10(_dataset(study, series, sop, modality, note), path)
        header, ts = read_stored(path)
        receipt = Receipt("NODE", "SCU", "127.0.0.1", ts, "", 0, utcnow())
        out.append(Arrival(path, header, receipt, None, STOWRS if n % 2 else DIMSE))
    return out


def _state(side: Side) -> dict[str, object]:
    """What a receive leaves: files (by path under the store), rows, groups, records."""
    root = side.store.root
    files = {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "instances").rglob("*"))
        if p.is_file()
    }
    with side.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT sop_instance_uid, study_uid, series_uid, modality, path, size, "
                "called_ae, calling_ae FROM instances ORDER BY sop_instance_uid"
            )
        ).all()
        groups = conn.execute(
            text(
                "SELECT group_key, state, modalities, instance_count, total_bytes FROM groups"
                " ORDER BY group_key"
            )
        ).all()
    relative = [(*r[:4], str(Path(r[4]).relative_to(root)), *r[5:]) for r in rows]
    return {"files": files, "rows": relative, "groups": [tuple(g) for g in groups]}


@pytest.mark.parametrize("policy", ["keep_first", "replace"])
def test_keep_all_gives_what_keep_gives_one_after_the_other(
    tmp_path: Path, two_urls: tuple[str, str], policy: str
) -> None:
    batch = _side(tmp_path / "batch", two_urls[0], policy)
    alone = _side(tmp_path / "alone", two_urls[1], policy)
    try:
        for side in (batch, alone):
            [before] = _arrivals(side, [INDEXED_BEFORE], "before")
            assert side.intake.keep(*_fields(before)) == STORED
        got = batch.intake.keep_all(_arrivals(batch, ARRIVALS, "req"))
        expected = [alone.intake.keep(*_fields(a)) for a in _arrivals(alone, ARRIVALS, "req")]
        assert got == expected
        assert expected.count(STORED) == (7 if policy == "replace" else 4)
        assert _state(batch) == _state(alone)
        assert len(_state(batch)["rows"]) == 5  # type: ignore[arg-type]
        # duplicates' spooled files are the caller's to remove, in both
        assert _spooled(batch) == _spooled(alone)
        assert len(batch.intake._claims) == 0
    finally:
        batch.close()
        alone.close()


class _RacedRecorder(Recorder):
    """Another process indexes one instance of the batch just before the batch's own
    transaction (a real second writer on the same database, at the one moment that
    makes the batch's INSERT conflict)."""

    racer: Recorder
    raced: tuple[Arrival, Path] | None = None

    def record_all(self, entries):  # type: ignore[no-untyped-def]
        if self.raced is not None:
            arrival, path = self.raced
            self.raced = None
            receipt = Receipt(
                "OTHER", "SCU", None, arrival.receipt.transfer_syntax, str(path), 1, utcnow()
            )
            self.racer.record(arrival.header, receipt)
        return super().record_all(entries)


def test_a_batch_that_conflicts_with_another_writer_is_indexed_one_by_one(
    tmp_path: Path, index_url: str
) -> None:
    side = _side(tmp_path / "store", index_url, "keep_first", _RacedRecorder)
    racer_db = Database(index_url)
    recorder = side.recorder
    assert isinstance(recorder, _RacedRecorder)
    recorder.racer = Recorder(racer_db, lambda title: AETitleSettings(ae_title=title))
    try:
        rows = [("1.2.9.5", "1.2.9.5.1", f"1.2.9.5.1.{i}", "CT", "n") for i in range(5)]
        arrivals = _arrivals(side, rows, "req")
        raced = arrivals[2]
        recorder.raced = (raced, side.store.path_for("1.2.9.5", "1.2.9.5.1", "1.2.9.5.1.2"))
        got = side.intake.keep_all(arrivals)
        # The other writer's row names the same file: it is kept, this copy a duplicate.
        assert got == [STORED, STORED, DUPLICATE, STORED, STORED]
        state = _state(side)
        assert [r[0] for r in state["rows"]] == [r[2] for r in rows]  # type: ignore[index]
        assert all((side.store.root / r[4]).is_file() for r in state["rows"])  # type: ignore[index]
    finally:
        recorder.racer.close()
        racer_db.dispose()
        side.close()


class _CountingRecorder(Recorder):
    """Counts the instances of each index transaction of a batch."""

    batches: list[int]

    def record_all(self, entries):  # type: ignore[no-untyped-def]
        self.batches.append(len(entries))
        return super().record_all(entries)


def test_many_more_than_a_batch_are_kept_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_module, "BATCH", 8)
    side = _side(
        tmp_path / "store", sqlite_url(tmp_path / "i.sqlite"), "keep_first", _CountingRecorder
    )
    recorder = side.recorder
    assert isinstance(recorder, _CountingRecorder)
    recorder.batches = []
    try:
        rows = [
            (f"1.2.9.{s}", f"1.2.9.{s}.1", f"1.2.9.{s}.1.{i}", "CT", "n")
            for s in range(3)
            for i in range(20)
        ]
        assert side.intake.keep_all(_arrivals(side, rows, "req")) == [STORED] * 60
        assert recorder.batches == [8] * 7 + [4]
        assert len(_state(side)["rows"]) == 60  # type: ignore[arg-type]
        assert len(side.intake._claims) == 0
    finally:
        side.close()


def test_a_series_that_cannot_be_created_fails_alone(tmp_path: Path) -> None:
    side = _side(tmp_path / "store", sqlite_url(tmp_path / "i.sqlite"), "keep_first")
    try:
        rows = [
            ("1.2.9.7", "1.2.9.7.1", "1.2.9.7.1.1", "CT", "n"),
            ("1.2.9.7", "1.2.9.7.2", "1.2.9.7.2.1", "CT", "n"),
            ("1.2.9.7", "1.2.9.7.1", "1.2.9.7.1.2", "CT", "n"),
        ]
        blocked = side.store.instances / "1.2.9.7" / "1.2.9.7.2"
        blocked.parent.mkdir(parents=True)
        blocked.write_bytes(b"not a directory")
        got = side.intake.keep_all(_arrivals(side, rows, "req"))
        assert got[0] == STORED and got[2] == STORED
        assert isinstance(got[1], StoreError)
        assert [r[0] for r in _state(side)["rows"]] == ["1.2.9.7.1.1", "1.2.9.7.1.2"]  # type: ignore[index]
    finally:
        side.close()


def _spooled(side: Side) -> list[str]:
    return sorted(p.name for p in side.store.incoming.glob("*.part"))


def _fields(a: Arrival) -> tuple[Path, object, Receipt, None, str]:
    return a.spooled, a.header, a.receipt, None, a.kind
