"""Cost of start-up reconciliation (``dicom_node.store.reconcile``) on a SQLite index.

Builds a store of N indexed files (empty: an indexed file is never read) plus K real
synthetic CT instances without a row (what a power cut leaves), then times one
reconciliation: the chunked load of the indexed paths, the walk, and the check, header
read and recording of the K unindexed ones. No peer does this; the figures are absolute.

    python benchmarks/reconcile_scan.py [--indexed 100000] [--lost 200]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom import dcmread
from sqlalchemy import insert

from dicom_node.db import Database, sqlite_url
from dicom_node.index.recorder import Recorder
from dicom_node.index.tables import Group, Instance
from dicom_node.jobs import models  # noqa: F401  (registers the job tables)
from dicom_node.store import reconcile
from dicom_node.store.origin import DIMSE, Origin, OriginRecords
from dicom_node.store.writer import InstanceStore
from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files


def build(root: Path, indexed: int, lost: int) -> tuple[InstanceStore, Database]:
    store = InstanceStore(root, fsync=False)
    store.open()
    db = Database(sqlite_url(root / "index.sqlite"))
    db.create_all()
    now = datetime(2026, 1, 1)
    group = dict(state="routed", called_ae="A", calling_ae="B", group_by="study")
    with db.engine.begin() as c:
        gid = c.execute(
            insert(Group).values(
                **group,
                group_key="1",
                study_uid="1",
                instance_count=indexed,
                total_bytes=0,
                first_received=now,
                last_received=now,
                deadline=now,
            )
        ).inserted_primary_key[0]
        rows = []
        for i in range(indexed):
            study, series = f"1.{i // 1000}", f"1.{i // 1000}.{(i // 100) % 10}"
            path = store.path_for(study, series, f"1.2.{i}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            rows.append(
                dict(
                    sop_instance_uid=f"1.2.{i}",
                    sop_class_uid="1",
                    study_uid=study,
                    series_uid=series,
                    transfer_syntax="1",
                    calling_ae="B",
                    called_ae="A",
                    received_at=now,
                    path=str(path),
                    size=0,
                    group_id=gid,
                )
            )
        c.execute(insert(Instance), rows)
    series = iter_ct_series(lost, Patient(patient_id="P"), rows=64, cols=64, study_uid=new_uid())
    origins = OriginRecords(store)  # what the receive path wrote before Success
    for f in write_files(series, root / "src"):
        ds = dcmread(f, stop_before_pixels=True)
        target = store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        origins.note(target, Origin(DIMSE, "A", "B", None))
        shutil.move(f, target)
    return store, db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--indexed", type=int, default=100_000)
    ap.add_argument("--lost", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store, db = build(Path(tmp), args.indexed, args.lost)
        recorder = Recorder(db, lambda _ae: None)
        started = time.monotonic()
        report = reconcile.reconcile(store, db, recorder)
        seconds = time.monotonic() - started
        recorder.close()
        db.dispose()
    assert report.count(reconcile.REINDEXED) == args.lost, report.summary()
    print(f"reconcile: {report.summary()}")
    per_million = 1e6 / report.seen * seconds
    print(f"  {report.seen / seconds:,.0f} files/s seen; per 1M files ~{per_million:.0f} s")


if __name__ == "__main__":
    main()
