"""Destination status from the delivery record, on SQLite and PostgreSQL: a job that two
destinations share, one accepting and one failing; the 24 h window; attempts under way;
the CLI's ``destinations status``; every query of it seeks the (destination, started_at)
index of migration 0004 instead of scanning the attempts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import event, update
from typer.testing import CliRunner

from dicom_node import schema
from dicom_node.db import Database, sqlite_url, utcnow
from dicom_node.delivery.report import DeliveryReport, InstanceOutcome
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.destination_status import destination_status, known_destinations
from dicom_node.jobs.models import DeliveryAttempt, Job, JobState
from dicom_node.jobs.queue import JobQueue, NewJob
from tests.support.groups import add_group

from dicom_node.cli import app  # isort: skip


def _job(db: Database, root: Path, study: str, destinations: list[str]) -> int:
    (root / study).mkdir(parents=True, exist_ok=True)
    gid, uids = add_group(db, root / study, state="routed", study=study)
    job_id = JobQueue(db).enqueue(
        NewJob(
            group_id=gid,
            rule_name=f"fwd-{study}",
            action="forward",
            study_uid=study,
            destinations=destinations,
            instance_uids=uids,
        )
    )
    assert job_id is not None
    return job_id


def _attempt(db: Database, job: int, dest: str, outcomes: list[str], error: str = "") -> int:
    attempt = AttemptLog(db).start(job, dest, planned=len(outcomes), protocol="dimse")
    report = DeliveryReport(dest, "dimse", dt.datetime.now(dt.UTC), on_outcomes=attempt.record)
    for i, outcome in enumerate(outcomes):
        report.add(
            InstanceOutcome(f"/r/{i}.dcm", f"9.{job}.{i}", outcome, code=0, error=error or None)
        )
    attempt.finish(report.finish())
    return attempt.id


def test_shared_job_pending_only_where_not_accepted(db: Database, tmp_path: Path) -> None:
    job = _job(db, tmp_path, "1.2.3", ["PACS", "DOWN"])
    _attempt(db, job, "PACS", ["delivered", "delivered"])
    _attempt(db, job, "DOWN", ["transient", "transient"], error="connection refused")
    last = _attempt(db, job, "DOWN", ["transient", "transient"], error="association rejected")
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job).values(state=JobState.FAILED))

    pacs, down = destination_status(db, ["PACS", "DOWN"], configured=["PACS"])
    assert (pacs.configured, down.configured) == (True, False)
    assert pacs.last_attempt is not None and pacs.last_attempt.outcome == "delivered"
    assert (pacs.delivered, pacs.failed, pacs.pending_jobs, pacs.last_error) == (1, 0, 0, None)
    assert (pacs.instances_delivered, pacs.instances_failed) == (2, 0)

    assert (down.delivered, down.failed, down.in_progress) == (0, 2, 0)
    assert (down.instances_delivered, down.instances_failed) == (0, 4)
    assert down.last_attempt is not None and down.last_attempt.study_uid == "1.2.3"
    assert down.last_error is not None and down.last_error.job_id == job
    assert down.last_error.error is not None and "association rejected" in down.last_error.error
    assert down.pending_jobs == 1
    assert down.oldest_pending is not None
    assert (down.oldest_pending.job_id, down.oldest_pending.attempts) == (job, 2)
    with db.session() as s:
        row = s.get(DeliveryAttempt, last)
        assert row is not None and down.last_attempt.at == row.started_at


def test_window_attempts_under_way_and_oldest_pending(db: Database, tmp_path: Path) -> None:
    old = _job(db, tmp_path, "1.1", ["PACS"])
    new = _job(db, tmp_path, "1.2", ["PACS"])
    first = _attempt(db, old, "PACS", ["transient"], error="timeout")
    with db.session() as s:  # two days ago: outside the window, still the oldest pending
        two_days = utcnow() - dt.timedelta(days=2)
        s.execute(update(Job).where(Job.id == old).values(created_at=two_days))
        s.execute(
            update(DeliveryAttempt).where(DeliveryAttempt.id == first).values(started_at=two_days)
        )
    AttemptLog(db).start(new, "PACS", planned=1, protocol="dimse")  # under way

    [pacs] = destination_status(db, ["PACS"], configured=["PACS"])
    assert (pacs.delivered, pacs.failed, pacs.in_progress) == (0, 0, 1)
    assert pacs.last_attempt is not None and pacs.last_attempt.outcome == "started"
    assert pacs.last_attempt.job_id == new
    assert pacs.last_error is not None and "timeout" in (pacs.last_error.error or "")
    assert pacs.pending_jobs == 2
    assert pacs.oldest_pending is not None and pacs.oldest_pending.job_id == old


def test_cli_destinations_status(db: Database, tmp_path: Path, index_url: str) -> None:
    job = _job(db, tmp_path, "1.2.3", ["PACS"])
    _attempt(db, job, "PACS", ["transient"], error="refused")
    config = tmp_path / "node.yaml"
    config.write_text(
        f"data_dir: {tmp_path}\ndatabase_url: {index_url}\n"
        "destinations:\n  - {name: PACS, kind: dimse, ae_title: PACS, host: 127.0.0.1, port: 9}\n"
    )
    r = CliRunner().invoke(app, ["destinations", "status", "--json", "--config", str(config)])
    assert r.exit_code == 0, r.output
    [pacs] = json.loads(r.output)
    assert pacs["name"] == "PACS" and pacs["failed"] == 1 and pacs["pending_jobs"] == 1
    assert "refused" in pacs["last_error"]["error"]
    r = CliRunner().invoke(app, ["destinations", "status", "--config", str(config)])
    assert r.exit_code == 0 and "PACS" in r.output and "refused" in r.output
    r = CliRunner().invoke(app, ["destinations", "status", "NOPE", "--config", str(config)])
    assert r.exit_code == 1 and "no destination 'NOPE'" in r.output


def test_known_destinations_every_name_once_in_order(db: Database, tmp_path: Path) -> None:
    assert known_destinations(db) == []
    job = _job(db, tmp_path, "1.2.3", ["PACS", "AI", "ZZ"])
    for dest in ("PACS", "AI", "PACS", "ZZ", "AI"):
        _attempt(db, job, dest, ["delivered"])
    assert known_destinations(db) == ["AI", "PACS", "ZZ"]


INDEXES = ("destination_started_at", "under_way", "errors")  # of migration 0004


@pytest.mark.parametrize("made_by", ["create_all", "migrations"])
def test_status_queries_seek_the_destination_indexes(tmp_path: Path, made_by: str) -> None:
    """EXPLAIN QUERY PLAN of every statement the status runs on delivery_attempts: each
    reads it through an index (migration 0004's, or by job or id), none scans the table,
    so the time taken follows the window and the destinations, not the history. The
    same whether the tables were created at head or migrated (SQLite breaks ties between
    indexes by their order of creation)."""
    db = Database(sqlite_url(tmp_path / "index.sqlite"))
    if made_by == "create_all":
        db.create_all()
    else:
        with db.engine.begin() as conn:
            command.upgrade(schema._config(conn), "head")
    job = _job(db, tmp_path, "1.2.3", ["PACS", "DOWN"])
    for dest in ("PACS", "DOWN", "PACS"):
        _attempt(db, job, dest, ["transient"], error="refused")
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, params, _context, _many) -> None:
        statements.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", capture)
    destination_status(db, ["PACS", "DOWN", *known_destinations(db)])
    event.remove(db.engine, "before_cursor_execute", capture)
    plans = []
    with db.engine.connect() as conn:
        for statement, params in statements:
            if "delivery_attempts" in statement and statement.lstrip().upper().startswith(
                ("SELECT", "WITH")
            ):
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                plans.append([r[-1] for r in rows if "delivery_attempts" in r[-1]])
    db.dispose()
    # names; newest and newest error of each of 2; window; under way; responses; pending
    assert len(plans) == 9, plans
    for plan in plans:
        assert plan, plans
        for line in plan:
            assert line.startswith("SEARCH delivery_attempts USING"), plans
    used = " ".join(line for plan in plans for line in plan)
    for name in INDEXES:
        assert f"ix_delivery_attempts_{name} " in used, (name, plans)
    # the 24 h window is a range of the index, not a filter of every row
    assert "ix_delivery_attempts_destination_started_at (destination=? AND started_at>?)" in used
