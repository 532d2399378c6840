"""Statements compiled once and run on the DBAPI cursor write what SQLAlchemy Core would."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select, update

import dicom_node.index.tables  # noqa: F401  (registers the tables)
from dicom_node.db import Database
from dicom_node.index.compiled import CompiledStatement
from dicom_node.index.tables import OPEN, Group

GROUPS = Group.__table__


def _group(key: str, when: datetime) -> dict[str, object]:
    return dict(
        state=OPEN,
        called_ae="AE",
        calling_ae="SCU",
        group_by="study",
        group_key=key,
        study_uid=key,
        series_uid=None,
        patient_id="P",
        patient_name="Doe^Jane",
        accession_number=None,
        study_date="20261123",
        modalities="CT",
        instance_count=1,
        total_bytes=10,
        first_received=when,
        last_received=when,
        deadline=when,
    )


def test_compiled_insert_and_update_match_core(index_url: str) -> None:
    db = Database(index_url)
    db.create_all()
    dialect = db.engine.dialect
    when = datetime(2026, 11, 23, 10, 0, 0)  # no microseconds: formatted like Core's
    later = datetime(2026, 11, 23, 10, 0, 5, 250_000)
    values = _group("1.2.3", when)
    keys = list(values)
    fast_insert = CompiledStatement(insert(GROUPS).returning(GROUPS.c.id), dialect, keys)
    fast_update = CompiledStatement(
        update(GROUPS)
        .where(GROUPS.c.id == bindparam("gid"), GROUPS.c.state == OPEN)
        .values(instance_count=GROUPS.c.instance_count + 1, deadline=bindparam("due")),
        dialect,
    )
    with db.engine.begin() as conn:
        core_id = conn.execute(insert(GROUPS), _group("1.2.4", when)).inserted_primary_key[0]
        fast_id = fast_insert.execute(conn, values).fetchone()[0]
        assert fast_update.execute(conn, {"gid": fast_id, "due": later}).rowcount == 1
        conn.execute(
            update(GROUPS)
            .where(GROUPS.c.id == core_id)
            .values(instance_count=GROUPS.c.instance_count + 1, deadline=later)
        )
        # the fixed literal (state = 'open') is bound too: a closed group is not touched
        conn.execute(update(GROUPS).where(GROUPS.c.id == core_id).values(state="complete"))
        assert fast_update.execute(conn, {"gid": core_id, "due": when}).rowcount == 0
    with db.engine.connect() as conn:
        rows = {r.group_key: r for r in conn.execute(select(GROUPS))}
        raw = {
            key: rest
            for key, *rest in conn.exec_driver_sql(
                "SELECT group_key, first_received, deadline FROM groups"
            )
        }
    fast, core = rows["1.2.3"], rows["1.2.4"]
    assert fast.instance_count == core.instance_count == 2
    assert fast.deadline == core.deadline == later  # read back through SQLAlchemy
    assert raw["1.2.3"] == raw["1.2.4"]  # stored as the same text
    assert fast.first_received == core.first_received == when
    db.dispose()
