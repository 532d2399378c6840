"""WADO-RS lists a series' instances by Instance Number on every database, those without
one last (SQLite sorts NULL first, PostgreSQL last): the order of a retrieve, and the
middle image a series thumbnail shows, must not depend on the database."""

from __future__ import annotations

from datetime import datetime

from dicom_node.db import Database
from dicom_node.http import wado
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import Receipt, Recorder

WHEN = datetime(2026, 12, 3, 12, 0, 0)


def test_instances_without_a_number_come_last_on_every_database(index_url: str) -> None:
    db = Database(index_url)
    db.create_all()
    recorder = Recorder(db, lambda ae: None)
    for sop, number in (("1.9.1.1", None), ("1.9.1.2", 3), ("1.9.1.3", 1), ("1.9.1.4", None)):
        header = InstanceHeader(
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            sop_instance_uid=sop,
            study_uid="1.9",
            series_uid="1.9.1",
            instance_number=number,
        )
        recorder.record(header, Receipt("NODE", "MOD", None, "1.2.840.10008.1.2.1", "/x", 1, WHEN))
    recorder.close()
    try:
        with db.session() as session:
            found = [i.sop for i in wado.find(session, "1.9", "1.9.1")]
        assert found == ["1.9.1.3", "1.9.1.2", "1.9.1.1", "1.9.1.4"]
    finally:
        db.dispose()
