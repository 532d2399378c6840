"""Start-up reconciliation removes what a crash left between creating a series
directory (with its origin record) and the series' first index row: a series directory
holding no instance file and no row, and a study directory left empty. A directory that
holds an instance file stays, indexed or not, and so does one a receiver holds.

As in test_reconcile.py, the crash is kill -9; the rows it would not have written are
deleted from the database directly.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from dicom_node.db import Database, sqlite_url
from dicom_node.index.recorder import Recorder
from dicom_node.settings.node import AETitleSettings
from dicom_node.store.origin import Origin, series_record
from dicom_node.store.reconcile import reconcile
from dicom_node.store.series_lock import placing
from dicom_node.store.writer import InstanceStore
from tests.store.reconcile_support import SUMMARY, instance_rows, lose_last_rows, reconcile_config
from tests.store.support import MODX, inconsistencies
from tests.support.dcmtk import storescu
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study

pytestmark = pytest.mark.peer


def _path(store: InstanceStore, file: Path) -> Path:
    """Where ``store`` keeps the instance in ``file``."""
    ds = pydicom.dcmread(file, stop_before_pixels=True)
    return store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def test_a_series_left_by_a_crash_before_its_first_row_is_removed(tmp_path: Path) -> None:
    """The node is killed right after the first instance of a series from FIRST was
    stored; its file and row are then lost, leaving the series directory with FIRST's
    origin record only. Next to it: a study directory left empty, a stored and indexed
    study, and an instance file without row or origin record. On restart only the
    leftovers go; a C-STORE from SECOND into that series then makes SECOND its owner."""
    crashed = make_study(tmp_path / "crashed", 2, size=64, seed=51)
    kept = make_study(tmp_path / "kept", 1, size=64, seed=52)
    loose = make_study(tmp_path / "loose", 1, size=64, seed=53)
    node = NodeProcess(tmp_path / "node", reconcile_config(None, 120))
    store = InstanceStore(node.data_dir)
    node.start()
    try:
        storescu(node.port, kept, calling="KEEPER", check=True)
        storescu(node.port, crashed[:1], calling="FIRST", check=True)
    finally:
        node.kill()
    first = _path(store, crashed[0])
    sop = first.stem
    assert lose_last_rows(node.index, 1) == [sop]  # the crash came before its row and file
    first.unlink()
    series = first.parent
    assert sorted(p.name for p in series.iterdir()) == ["origin.json"]
    empty_study = store.instances / "1.2.826.0.1.3680043.9.7433.99"
    empty_study.mkdir()
    unindexed = _path(store, loose[0])  # no origin record: left in place and reported
    unindexed.parent.mkdir(parents=True)
    unindexed.write_bytes(loose[0].read_bytes())
    kept_path = _path(store, kept[0])

    node = NodeProcess(tmp_path / "node", reconcile_config(None, 120), port=node.port)
    node.start()  # no clean-stop marker: reconciles
    try:
        log = node.log()
        assert f"{SUMMARY} 2 file(s) seen, 0 re-indexed, 0 unreadable" in log
        assert "1 without origin record, 3 empty director(ies) removed" in log
        assert not series.exists() and not series.parent.exists()
        assert not empty_study.exists()
        assert unindexed.read_bytes() == loose[0].read_bytes()
        assert kept_path.is_file() and series_record(kept_path.parent).is_file()
        storescu(node.port, crashed[1:], calling="SECOND", check=True)
    finally:
        assert node.stop() == 0
    second = _path(store, crashed[1])
    assert Origin.decode(series_record(series).read_bytes()).calling_ae == "SECOND"
    rows = instance_rows(node.index)
    assert rows[second.stem]["calling_ae"] == "SECOND" and sop not in rows
    assert inconsistencies(node) == [f"file {unindexed} has no row"]


def test_a_series_a_receiver_holds_is_left_for_the_next_start(tmp_path: Path) -> None:
    """A series directory with nothing but an origin record, held by a receiver (another
    node process on the store), is not removed until the receiver lets go of it."""
    store = InstanceStore(tmp_path / "data")
    store.open()
    db = Database(sqlite_url(tmp_path / "index.sqlite"))
    db.create_all()
    recorder = Recorder(db, lambda title: AETitleSettings(ae_title=title))
    series = store.path_for("1.2.3", "1.2.3.4", "1.2.3.4.5").parent
    try:
        with placing(store, series):
            series_record(series).write_bytes(MODX.encode())
            report = reconcile(store, db, recorder)
            assert report.leftovers == [] and series_record(series).is_file()
        report = reconcile(store, db, recorder, dry_run=True)
        assert report.leftovers == [series, series.parent] and series.is_dir()
        report = reconcile(store, db, recorder)
        assert report.leftovers == [series, series.parent]
        assert list(store.instances.iterdir()) == []
    finally:
        recorder.close()
        db.dispose()
        store.close()
