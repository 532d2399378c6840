"""Rows the job and routing tests put in a real index: groups with instances whose files
exist."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dicom_node.db import Database, utcnow
from dicom_node.index.tables import Group, Instance


def add_group(
    db: Database,
    root: Path,
    *,
    state: str,
    n: int = 2,
    modality: str = "CR",
    age_days: float = 0.0,
    study: str = "1.2.3",
) -> tuple[int, list[str]]:
    """A group with ``n`` instances whose files exist; returns (group id, SOP UIDs)."""
    when = utcnow() - dt.timedelta(days=age_days)
    with db.session() as s:
        g = Group(
            state=state,
            called_ae="DICOM_NODE",
            calling_ae="MOD",
            group_by="study",
            group_key=f"{study}.{age_days}.{state}",
            study_uid=study,
            patient_id="P1",
            modalities=modality,
            instance_count=n,
            total_bytes=n,
            first_received=when,
            last_received=when,
            deadline=when,
            completed_at=when,
        )
        s.add(g)
        s.flush()
        uids = []
        for i in range(n):
            uid = f"{study}.{g.id}.{i}"
            path = root / f"{uid}.dcm"
            path.write_bytes(b"x")
            s.add(
                Instance(
                    sop_instance_uid=uid,
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                    study_uid=study,
                    series_uid=f"{study}.9",
                    modality=modality,
                    body_part="CHEST",
                    transfer_syntax="1.2.840.10008.1.2.1",
                    calling_ae="MOD",
                    called_ae="DICOM_NODE",
                    received_at=when,
                    path=str(path),
                    size=1,
                    group_id=g.id,
                )
            )
            uids.append(uid)
        return g.id, uids
