"""Schema migrations: a database of the previous release (8da2ed1), with data in it, is
refused by `serve` and `worker` until `dicom-node db upgrade`, which brings it to exactly
the current schema and keeps its data (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, create_engine, func, insert, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from dicom_node import schema
from dicom_node.db import Base, Database
from dicom_node.http import qido, qido_query
from dicom_node.http.results import RESULTS
from dicom_node.index import tables
from dicom_node.jobs import models  # noqa: F401
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.models import DeliveryAttempt, DeliveryResponse, Job
from tests.scale.fixtures import schema_8da2ed1 as old
from tests.support.node_process import ROOT
from tests.support.ports import free_port

WHEN = dt.datetime(2026, 11, 20, 10, 0, 0)
#: A group of one instance, as every schema revision has it.
GROUP = {
    "called_ae": "NODE",
    "calling_ae": "MOD",
    "group_by": "study",
    "group_key": "1.2.3",
    "study_uid": "1.2.3",
    "instance_count": 1,
    "total_bytes": 10,
    "first_received": WHEN,
    "last_received": WHEN,
    "deadline": WHEN,
}


def make_previous_release_db(url: str) -> None:
    """The 8da2ed1 tables, created by that release's metadata, with a failed job whose
    delivery attempt had one instance accepted and one refused."""
    engine = create_engine(url)
    old.Base.metadata.create_all(engine)
    with Session(engine) as s:
        g = old.Group(**GROUP, state="routed", modalities="CR", completed_at=WHEN)
        s.add(g)
        s.flush()
        s.add(
            old.Instance(
                sop_instance_uid="1.2.3.1",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                study_uid="1.2.3",
                series_uid="1.2.3.9",
                transfer_syntax="1.2.840.10008.1.2.1",
                calling_ae="MOD",
                called_ae="NODE",
                received_at=WHEN,
                path="/data/x.dcm",
                size=10,
                group_id=g.id,
            )
        )
        job = old.Job(
            group_id=g.id,
            rule_name="cxr",
            action="infer",
            models=["m"],
            destinations=["PACS"],
            instance_uids=["1.2.3.1"],
            study_uid="1.2.3",
            state="failed",
            attempts=1,
            next_attempt_at=WHEN,
            written_at=WHEN,
        )
        s.add(job)
        s.flush()
        s.add(
            old.JobOutput(
                job_id=job.id,
                kind="sr",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.88.34",
                sop_instance_uid="9.1",
                path="/data/results/9.1.dcm",
            )
        )
        s.add(
            old.DeliveryAttempt(
                job_id=job.id,
                destination="PACS",
                started_at=WHEN,
                finished_at=WHEN,
                outcome="transient",
                sent=2,
                accepted=1,
                statuses={
                    "9.1": {"outcome": "delivered", "code": 0, "error": None},
                    "9.2": {"outcome": "transient", "code": 0xA700, "error": "full"},
                },
            )
        )
        s.commit()
    engine.dispose()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def clis_at_once(config: Path, *commands: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Run read-only CLI commands side by side (each is mostly its imports); return each
    one's (exit code, stdout, stderr) in order."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dicom_node", *args, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for args in commands
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        out.append((proc.returncode, stdout, stderr))
    return out


def schema_diff(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def test_previous_release_database_is_refused_then_upgraded_with_its_data(
    index_url: str, tmp_path: Path
) -> None:
    url = index_url
    make_previous_release_db(url)
    config = tmp_path / "node.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": url,
                "data_dir": str(tmp_path / "data"),
                "port": free_port(),
                "bind_address": "127.0.0.1",
                "disk_reserve_mb": 0,
                "models": {"bundled": False},
                "jobs": {"executor": "celery", "broker_url": "redis://127.0.0.1:1/0"},
            }
        )
    )
    db = Database(url)
    with pytest.raises(schema.SchemaError, match="dicom-node db upgrade"):
        schema.ensure_current(db)
    # serve and worker refuse it and db status says what to do; none of them writes.
    serve, worker, status = clis_at_once(config, ("serve",), ("worker",), ("db", "status"))
    for name, (code, stdout, stderr) in (("serve", serve), ("worker", worker)):
        assert code == 1, (name, stdout, stderr)
        assert "older than this code" in stderr and "dicom-node db upgrade" in stderr
    assert "run `dicom-node db upgrade`" in status[1], status

    r = cli(config, "db", "upgrade")
    assert r.returncode == 0, r.stderr
    assert f"{schema.BASELINE} -> {schema.head()}" in r.stdout
    assert schema_diff(url) == []  # exactly the schema this code declares
    schema.ensure_current(db)  # serve and worker start now
    with db.session() as s:
        [inst] = s.scalars(select(tables.Instance)).all()
        assert (inst.sop_instance_uid, inst.path, inst.study_time) == (
            "1.2.3.1",
            "/data/x.dcm",
            None,
        )
        assert s.scalar(select(func.count()).select_from(RESULTS)) == 0
        job = s.scalars(select(Job)).one()
        assert (job.state, job.attempts, job.published_at) == ("failed", 1, None)
        attempt = s.scalars(select(DeliveryAttempt)).one()
        assert (attempt.planned, attempt.sent, attempt.accepted) == (2, 2, 1)
        got = {(r.sop_instance_uid, r.outcome, r.code) for r in s.scalars(select(DeliveryResponse))}
    assert got == {("9.1", "delivered", 0), ("9.2", "transient", 0xA700)}
    # A retry after the upgrade skips what the destination had accepted before it.
    assert AttemptLog(db).accepted(job.id) == {"PACS": {"9.1"}}
    assert "already at" in cli(config, "db", "upgrade").stdout
    db.dispose()


def test_migrations_from_nothing_reach_the_declared_schema(index_url: str) -> None:
    """baseline + each revision == the metadata (so a new revision that forgets a column
    fails here); an empty database is created at head."""
    engine = create_engine(index_url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "head")
    engine.dispose()
    assert schema_diff(index_url) == []


def test_empty_database_is_created_at_head(index_url: str) -> None:
    db = Database(index_url)
    schema.ensure_current(db)
    with db.engine.connect() as conn:
        assert (
            conn.execute(text("select version_num from alembic_version")).scalar() == schema.head()
        )
    db.dispose()


def test_0004_destination_indexes_upgrade_and_downgrade(index_url: str) -> None:
    """0003 -> 0004 adds the destination status indexes; back to 0003 removes them."""
    added = {
        "ix_delivery_attempts_destination_started_at",
        "ix_delivery_attempts_under_way",
        "ix_delivery_attempts_errors",
    }
    engine = create_engine(index_url)

    def indexes() -> set[str]:
        with engine.connect() as conn:
            return {i["name"] for i in sa_inspect(conn).get_indexes("delivery_attempts")}

    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0003_study_modality_index")
    assert not added & indexes()
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0004_delivery_destination_index")
    assert added <= indexes()
    with engine.begin() as conn:
        command.downgrade(schema._config(conn), "0003_study_modality_index")
    assert not added & indexes()
    engine.dispose()


SERIES_DATE_COLUMNS = {"series_date", "series_time", "pps_start_date", "pps_start_time"}


def test_0005_series_dates_upgrade_a_database_with_rows(index_url: str) -> None:
    """A database at 0004 with an instance and a result is upgraded by `db upgrade` to
    exactly the declared schema: its rows stay, with no series date or time (NULL: they
    were indexed before the columns), and QIDO-RS returns them without those elements.
    Back to 0004 removes the columns and keeps the rows."""
    engine = create_engine(index_url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0004_delivery_destination_index")
        at_0004 = MetaData()
        groups, instances, results = (
            Table(name, at_0004, autoload_with=conn)
            for name in ("groups", "instances", "result_instances")
        )
        assert not SERIES_DATE_COLUMNS & set(instances.c.keys())
        values = {**GROUP, "state": "open", "modalities": "CT"}
        gid = conn.execute(insert(groups).values(**values)).inserted_primary_key[0]
        row = {
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
            "study_uid": "1.2.3",
            "series_uid": "1.2.3.9",
            "study_date": "20240101",
            "modality": "CT",
            "transfer_syntax": "1.2.840.10008.1.2.1",
            "path": "/data/x.dcm",
        }
        conn.execute(
            insert(instances).values(
                sop_instance_uid="1.2.3.1",
                calling_ae="MOD",
                called_ae="NODE",
                received_at=WHEN,
                size=10,
                group_id=gid,
                **row,
            )
        )
        conn.execute(insert(results).values(output_id=1, **{**row, "sop_instance_uid": "1.2.3.2"}))
    db = Database(index_url)
    assert schema.upgrade(db) == ("0004_delivery_destination_index", schema.head())
    assert schema_diff(index_url) == []
    with db.session() as s:
        for table in (tables.Instance.__table__, RESULTS):
            [kept] = s.execute(select(table)).mappings().all()
            assert kept["series_uid"] == "1.2.3.9" and kept["study_date"] == "20240101"
            assert {k: kept[k] for k in SERIES_DATE_COLUMNS} == dict.fromkeys(SERIES_DATE_COLUMNS)
        query = qido_query.parse("series", [("includefield", "all")], {})
        [series] = qido.search(s, query, "http://node/dicomweb")
    assert series["0020000E"]["Value"] == ["1.2.3.9"] and series["00201209"]["Value"] == [2]
    assert not {"00080021", "00080031", "00400244", "00400245"} & set(series)
    with engine.begin() as conn:
        command.downgrade(schema._config(conn), "0004_delivery_destination_index")
    with engine.connect() as conn:
        columns = {c["name"] for c in sa_inspect(conn).get_columns("instances")}
        assert not SERIES_DATE_COLUMNS & columns
        assert conn.execute(select(func.count()).select_from(instances)).scalar() == 1
    db.dispose()
    engine.dispose()
