"""Record a stored instance in the index and in its open group, in one transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from dicom_node.db import Database
from dicom_node.index.header import InstanceHeader
from dicom_node.index.tables import OPEN, Group, Instance
from dicom_node.settings.node import AETitleSettings


@dataclass(frozen=True)
class Receipt:
    """How and where an instance arrived and was stored."""

    called_ae: str
    calling_ae: str
    peer_address: str | None
    transfer_syntax: str
    path: str
    size: int
    received_at: datetime


@dataclass(frozen=True)
class Recorded:
    """The outcome of :meth:`Recorder.record`."""

    instance_id: int
    group_id: int
    new_group: bool


class Recorder:
    """Writes instance rows and keeps groups up to date.

    All index writes of this process go through ``lock`` (SQLite has one writer anyway);
    across processes a partial unique index keeps one open group per (AE, key).
    """

    def __init__(self, db: Database, ae_settings: Callable[[str], AETitleSettings | None],
                 lock: threading.Lock | None = None) -> None:
        self.db = db
        self.ae_settings = ae_settings
        self.lock = lock or threading.Lock()

    def existing_path(self, sop_instance_uid: str) -> str | None:
        """The stored path of ``sop_instance_uid`` if it is already indexed."""
        with self.db.session() as s:
            return s.scalar(select(Instance.path).where(
                Instance.sop_instance_uid == sop_instance_uid))

    def record(self, header: InstanceHeader, receipt: Receipt, *,
               replace: bool = False) -> Recorded:
        """Insert the instance (replacing an existing row if ``replace``) and update its
        open group, opening one if none is open."""
        ae = self.ae_settings(receipt.called_ae)
        group_by = ae.group_by if ae else "study"
        quiet = ae.quiet_seconds if ae else 5.0
        key = header.series_uid if group_by == "series" else header.study_uid
        now = receipt.received_at
        deadline = now + timedelta(seconds=quiet)
        with self.lock, self.db.session() as s:
            if replace:
                old = s.execute(select(Instance.id, Instance.group_id, Instance.size).where(
                    Instance.sop_instance_uid == header.sop_instance_uid)).first()
                if old is not None:
                    s.execute(delete(Instance).where(Instance.id == old.id))
                    s.execute(update(Group).where(Group.id == old.group_id,
                                                  Group.state == OPEN).values(
                        instance_count=Group.instance_count - 1,
                        total_bytes=Group.total_bytes - old.size))
            row = s.execute(select(Group.id, Group.modalities).where(
                Group.called_ae == receipt.called_ae, Group.group_key == key,
                Group.state == OPEN)).first()
            new_group = row is None
            if row is None:
                group = Group(
                    state=OPEN, called_ae=receipt.called_ae, calling_ae=receipt.calling_ae,
                    group_by=group_by, group_key=key, study_uid=header.study_uid,
                    series_uid=header.series_uid if group_by == "series" else None,
                    patient_id=header.patient_id, patient_name=header.patient_name,
                    accession_number=header.accession_number, study_date=header.study_date,
                    modalities=header.modality or "", instance_count=1,
                    total_bytes=receipt.size, first_received=now, last_received=now,
                    deadline=deadline)
                s.add(group)
                s.flush()
                group_id = group.id
            else:
                group_id = row.id
                mods = [m for m in row.modalities.split("\\") if m]
                values: dict = dict(instance_count=Group.instance_count + 1,
                                    total_bytes=Group.total_bytes + receipt.size,
                                    last_received=now, deadline=deadline)
                if header.modality and header.modality not in mods:
                    values["modalities"] = "\\".join([*mods, header.modality])
                s.execute(update(Group).where(Group.id == group_id).values(**values))
            inst = Instance(
                sop_instance_uid=header.sop_instance_uid, sop_class_uid=header.sop_class_uid,
                study_uid=header.study_uid, series_uid=header.series_uid,
                patient_id=header.patient_id, patient_name=header.patient_name,
                accession_number=header.accession_number, study_date=header.study_date,
                modality=header.modality, body_part=header.body_part,
                series_description=header.series_description,
                view_position=header.view_position, image_type=header.image_type,
                instance_number=header.instance_number,
                transfer_syntax=receipt.transfer_syntax, rows=header.rows,
                columns=header.columns, number_of_frames=header.number_of_frames,
                calling_ae=receipt.calling_ae, called_ae=receipt.called_ae,
                peer_address=receipt.peer_address, received_at=now, path=receipt.path,
                size=receipt.size, group_id=group_id)
            s.add(inst)
            s.flush()
            return Recorded(inst.id, group_id, new_group)
