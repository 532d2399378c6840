"""The job queue on a real SQLite file: claiming, priorities, backoff, recovery."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dicom_node.db import Database, sqlite_url
from dicom_node.delivery.retry import RetryPolicy
from dicom_node.jobs.models import Job, JobState, Priority
from dicom_node.jobs.queue import JobQueue, NewJob


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    database = Database(sqlite_url(tmp_path / "index.sqlite3"))
    database.create_all()
    yield database
    database.dispose()


def _new(group: int, rule: str = "r", priority: int = Priority.ROUTINE, **kw) -> NewJob:
    return NewJob(group_id=group, rule_name=rule, action="infer", study_uid=f"1.2.{group}",
                  priority=priority, **kw)


def test_one_job_per_group_and_rule(db: Database) -> None:
    q = JobQueue(db)
    assert q.enqueue(_new(1)) is not None
    assert q.enqueue(_new(1)) is None
    assert q.enqueue(_new(1, rule="other")) is not None


def test_stat_jobs_are_claimed_before_routine(db: Database) -> None:
    q = JobQueue(db)
    routine = q.enqueue(_new(1))
    stat = q.enqueue(_new(2, priority=Priority.STAT))
    assert q.claim("w").job_id == stat
    assert q.claim("w").job_id == routine
    assert q.claim("w") is None


def _claim_all(url: str, worker: str, out: mp.Queue) -> None:
    database = Database(url)
    q = JobQueue(database)
    got = []
    while (claim := q.claim(worker)) is not None:
        got.append(claim.job_id)
    out.put(got)


def test_concurrent_processes_never_claim_the_same_job(db: Database) -> None:
    q = JobQueue(db)
    ids = {q.enqueue(_new(g)) for g in range(60)}
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(db.url, f"w{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    claimed = [job for _ in procs for job in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_transient_failure_backs_off_then_dies_after_max_attempts(db: Database) -> None:
    q = JobQueue(db)
    job_id = q.enqueue(_new(1))
    slow = RetryPolicy(base_s=3600, cap_s=3600, jitter=0, max_attempts=2)
    claim = q.claim("w")
    assert q.fail(claim, "destination down", permanent=False, policy=slow) == (
        JobState.FAILED
    )
    assert q.claim("w") is None  # not due yet
    with db.session() as s:  # time passes
        s.execute(update(Job).values(next_attempt_at=dt.datetime.now(dt.UTC)))
    claim = q.claim("w")
    assert claim.job_id == job_id and claim.attempt == 2
    assert q.fail(claim, "still down", permanent=False, policy=slow) == JobState.DEAD
    assert q.claim("w") is None
    assert q.retry(job_id)
    assert q.claim("w").attempt == 1


def test_permanent_failure_is_dead_at_once(db: Database) -> None:
    q = JobQueue(db)
    q.enqueue(_new(1))
    assert q.fail(q.claim("w"), "bad model", permanent=True, policy=RetryPolicy()) == (
        JobState.DEAD
    )


def test_recover_requeues_jobs_of_a_previous_process(db: Database) -> None:
    q = JobQueue(db)
    job_id = q.enqueue(_new(1))
    q.claim("host:111:0")
    assert q.recover(worker_prefix="host:222:") == []  # lease still fresh, other process
    assert q.recover(worker_prefix="host:") == [job_id]
    with db.session() as s:
        assert s.scalar(select(Job.state).where(Job.id == job_id)) == JobState.QUEUED
    assert q.claim("host:222:0").attempt == 2


def test_expired_lease_is_recovered(db: Database) -> None:
    q = JobQueue(db, lease_seconds=0.0)
    job_id = q.enqueue(_new(1))
    q.claim("elsewhere:1")
    assert q.recover() == [job_id]


def test_cancel_stops_heartbeat(db: Database) -> None:
    q = JobQueue(db)
    job_id = q.enqueue(_new(1))
    claim = q.claim("w")
    assert q.heartbeat(claim)
    assert q.cancel(job_id)
    assert not q.heartbeat(claim)
    assert q.fail(claim, "x", permanent=False, policy=RetryPolicy()) == JobState.CANCELLED
