"""The delivery record on SQLite and PostgreSQL: an attempt is committed when it starts,
each response as it arrives; an attempt a dead process left is marked interrupted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text, update
from typer.testing import CliRunner

from dicom_node.db import Database
from dicom_node.delivery.report import DeliveryReport, InstanceOutcome
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.models import Job, JobState
from dicom_node.jobs.queue import JobQueue, NewJob
from dicom_node.jobs.retention import Retention
from dicom_node.settings.jobs import RetentionSettings
from tests.support.groups import add_group

from dicom_node.cli import app  # isort: skip


def _job(db: Database, root: Path) -> int:
    gid, uids = add_group(db, root, state="routed")
    job_id = JobQueue(db).enqueue(
        NewJob(
            group_id=gid,
            rule_name="fwd",
            action="forward",
            study_uid="1.2.3",
            destinations=["pacs"],
            instance_uids=uids,
        )
    )
    assert job_id is not None
    return job_id


def _seen_elsewhere(url: str, sql: str) -> list[tuple]:
    """What another connection (another process, or the next run) reads: committed rows."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql))]
    finally:
        engine.dispose()


def _count(name: str, outcome: str) -> float:
    labels = {"destination": "pacs", "protocol": "dimse", "outcome": outcome}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _ok(uid: str) -> InstanceOutcome:
    return InstanceOutcome(f"/r/{uid}.dcm", uid, "delivered", code=0)


def test_attempt_and_responses_are_committed_as_they_happen(
    db: Database, tmp_path: Path, index_url: str
) -> None:
    job = _job(db, tmp_path)
    log = AttemptLog(db)
    delivered = _count("dicom_node_delivery_instances_total", "delivered")
    interrupted = _count("dicom_node_delivery_attempts_total", "interrupted")

    attempt = log.start(job, "pacs", planned=3, label=f"job {job} study 1.2.3", protocol="dimse")
    assert _seen_elsewhere(
        index_url, "SELECT outcome, planned, finished_at FROM delivery_attempts"
    ) == [("started", 3, None)]
    attempt.record([_ok("1.1")])
    attempt.record(
        [
            InstanceOutcome(
                "/r/1.2.dcm", "1.2", "transient", code=0xA700, error="C-STORE status 0xA700"
            )
        ]
    )
    assert _seen_elsewhere(
        index_url, "SELECT sop_instance_uid, outcome, code FROM delivery_responses ORDER BY id"
    ) == [("1.1", "delivered", 0), ("1.2", "transient", 0xA700)]
    assert log.accepted(job) == {"pacs": {"1.1"}}
    assert _count("dicom_node_delivery_instances_total", "delivered") == delivered + 1

    # The process dies here (finish never runs); the next worker to deliver the job:
    assert log.interrupt_unfinished(job, "1.2.3", {"pacs": "dimse"}) == 1
    assert log.interrupt_unfinished(job, "1.2.3") == 0
    rows = _seen_elsewhere(
        index_url, "SELECT outcome, finished_at, accepted, error FROM delivery_attempts"
    )
    assert rows[0][:3] == ("interrupted", None, 1) and "1 of 3" in rows[0][3]
    assert _count("dicom_node_delivery_attempts_total", "interrupted") == interrupted + 1

    # The retry sends only what is not on record as accepted, and finishes.
    again = log.start(job, "pacs", planned=2)
    report = DeliveryReport("pacs", "dimse", dt.datetime.now(dt.UTC), on_outcomes=again.record)
    report.add(_ok("1.2"))
    report.add(_ok("1.3"))
    again.finish(report.finish())
    assert log.accepted(job) == {"pacs": {"1.1", "1.2", "1.3"}}
    assert _seen_elsewhere(
        index_url,
        "SELECT outcome, sent, accepted, finished_at IS NULL FROM delivery_attempts ORDER BY id",
    ) == [("interrupted", 0, 1, True), ("delivered", 2, 2, False)]


def test_jobs_show_lists_interrupted_and_running_attempts(
    db: Database, tmp_path: Path, index_url: str
) -> None:
    job = _job(db, tmp_path)
    attempt = AttemptLog(db).start(job, "pacs", planned=3)
    attempt.record([_ok("1.1"), _ok("1.2")])
    config = tmp_path / "node.yaml"
    config.write_text(f"data_dir: {tmp_path}\ndatabase_url: {index_url}\n")

    def show() -> str:
        r = CliRunner().invoke(app, ["jobs", "show", str(job), "--config", str(config)])
        assert r.exit_code == 0, r.output
        return r.output

    with db.session() as s:  # a worker holds the job: the attempt is under way
        s.execute(update(Job).where(Job.id == job).values(state=JobState.DELIVERING))
    assert "in progress 2/3 accepted" in show()
    with db.session() as s:  # the node died and requeued it: nobody is sending
        s.execute(update(Job).where(Job.id == job).values(state=JobState.QUEUED))
    assert "interrupted 2/3 accepted" in show()
    AttemptLog(db).interrupt_unfinished(job)
    out = show()
    assert "interrupted 2/3 accepted, finished -" in out and "delivery attempts (1)" in out


def test_retention_removes_responses_with_their_attempts(
    db: Database, tmp_path: Path, index_url: str
) -> None:
    job = _job(db, tmp_path)
    attempt = AttemptLog(db).start(job, "pacs", planned=1)
    attempt.record([_ok("1.1")])
    with db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job)
            .values(state=JobState.DONE, finished_at=dt.datetime(2000, 1, 1))
        )
    report = Retention(db, lambda: RetentionSettings(jobs_days=1)).run_once()
    assert report.jobs == 1
    assert _seen_elsewhere(index_url, "SELECT count(*) FROM delivery_responses") == [(0,)]
