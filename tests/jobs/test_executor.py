"""The embedded executor runs each queued job exactly once, and survives a crashing job."""

from __future__ import annotations

import threading
from pathlib import Path

from dicom_node.db import Database, sqlite_url
from dicom_node.delivery.retry import RetryPolicy
from dicom_node.jobs.executor import LocalExecutor
from dicom_node.jobs.models import JobState
from dicom_node.jobs.queue import Claim, JobQueue, NewJob
from tests.support.waiting import wait_until


def _db(tmp_path: Path) -> Database:
    db = Database(sqlite_url(tmp_path / "i.sqlite3"))
    db.create_all()
    return db


def test_every_job_runs_once_and_a_crash_does_not_kill_workers(tmp_path: Path) -> None:
    db = _db(tmp_path)
    q = JobQueue(db)
    ids = [
        q.enqueue(NewJob(group_id=g, rule_name="r", action="infer", study_uid="1"))
        for g in range(20)
    ]
    ran: list[int] = []
    lock = threading.Lock()

    def run(claim: Claim) -> None:
        with lock:
            ran.append(claim.job_id)
        if claim.job_id == ids[3]:
            raise RuntimeError("boom")
        q.finish(claim)

    crashed: list[int] = []

    def on_crash(claim: Claim, exc: Exception) -> None:
        crashed.append(claim.job_id)
        q.fail(claim, repr(exc), permanent=True, policy=RetryPolicy())

    ex = LocalExecutor(q, run, workers=3, poll_seconds=0.05, on_crash=on_crash)
    ex.start()
    try:
        wait_until(lambda: len(ran) >= len(ids), 20, interval=0.05, describe=lambda: f"{ran=}")
    finally:
        ex.stop()
    assert sorted(ran) == sorted(ids)
    assert crashed == [ids[3]]
    from sqlalchemy import select

    from dicom_node.jobs.models import Job

    with db.session() as s:
        states = dict(s.execute(select(Job.id, Job.state)).all())
    assert states.pop(ids[3]) == JobState.DEAD
    assert set(states.values()) == {JobState.DONE}
