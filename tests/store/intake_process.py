"""The receive path's Intake in an OS process of its own, on a store and index that
another process uses too (tests/store/test_origin_processes.py).

    python -m tests.store.intake_process DATA_DIR DB_URL TEMPLATE KIND CALLED CALLING

Reads lines ``STUDY SERIES TAG COUNT START`` from stdin: waits until
``time.monotonic()`` reaches START (one clock for every process on the machine), then
stores COUNT instances ``{SERIES}.{TAG}.{i}`` of that series as received from the origin
given on the command line, and prints ``ok SOP...`` once each was answered Success
(stored, or a duplicate kept as it was: its spooled file removed, as a receiver does;
``fail REASON`` otherwise). The store is not opened (that would clear the other
process's spool).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pydicom

from dicom_node.db import Database, utcnow
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.settings.node import AETitleSettings
from dicom_node.store.intake import DUPLICATE, STORED, Intake
from dicom_node.store.reconcile import read_stored
from dicom_node.store.writer import InstanceStore


def main(argv: list[str]) -> None:
    data_dir, db_url, template_path, kind, called, calling = argv
    store = InstanceStore(Path(data_dir))
    db = Database(db_url)
    recorder = Recorder(db, lambda title: AETitleSettings(ae_title=title))
    intake = Intake(store, recorder, "keep_first")
    template = pydicom.dcmread(template_path)
    for line in sys.stdin:
        study, series, tag, count, start = line.split()
        spooled = []
        for i in range(int(count)):  # written before the start: only the placing races
            ds = template
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{series}.{tag}.{i}"
            path = store.incoming / f"{ds.SOPInstanceUID}.part"
            ds.save_as(path, enforce_file_format=True)
            spooled.append(path)
        while time.monotonic() < float(start):
            pass
        acked = []
        try:
            for path in spooled:
                header, ts = read_stored(path)
                receipt = Receipt(called, calling, "127.0.0.1", ts, "", 0, utcnow())
                outcome = intake.keep(path, header, receipt, kind=kind)
                if outcome == DUPLICATE:
                    path.unlink(missing_ok=True)  # or placed over the first
                elif outcome != STORED:
                    raise RuntimeError(f"{header.sop_instance_uid} not stored")
                acked.append(header.sop_instance_uid)
        except Exception as err:  # noqa: BLE001  (reported to the test)
            print("fail", type(err).__name__, err, flush=True)
            continue
        print("ok", *acked, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
