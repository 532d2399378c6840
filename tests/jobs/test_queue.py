"""The job queue on a real SQLite file and a real PostgreSQL server: claiming (also by
id, as Celery workers do), priorities, backoff, recovery, publishing."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp

import pytest
from sqlalchemy import select, update

from dicom_node.db import Database, utcnow
from dicom_node.delivery.retry import RetryPolicy
from dicom_node.jobs.models import Job, JobState, Priority
from dicom_node.jobs.queue import JobQueue, NewJob


@pytest.fixture()
def db(index_url: str) -> Database:
    database = Database(index_url)
    database.create_all()
    yield database
    database.dispose()


def _new(group: int, rule: str = "r", priority: int = Priority.ROUTINE, **kw) -> NewJob:
    return NewJob(
        group_id=group,
        rule_name=rule,
        action="infer",
        study_uid=f"1.2.{group}",
        priority=priority,
        **kw,
    )


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


def test_a_retry_falls_in_line_behind_jobs_queued_before_it_fell_due(db: Database) -> None:
    """Claims go by when a job became due, not by id: otherwise the retries of many older
    jobs to a dead destination, due again each time a worker frees up, kept a new study
    for a healthy destination waiting until they died (tests/delivery/
    test_hostile_destination_node.py shows it end to end)."""
    q = JobQueue(db)
    old = q.enqueue(_new(1))
    quick = RetryPolicy(base_s=3600, cap_s=3600, jitter=0)
    assert q.fail(q.claim("w"), "destination down", permanent=False, policy=quick) == (
        JobState.FAILED
    )
    new = q.enqueue(_new(2))
    now = utcnow()
    with db.session() as s:  # the old job fell due after the new one was queued
        s.execute(update(Job).where(Job.id == new).values(created_at=now - dt.timedelta(seconds=2)))
        s.execute(
            update(Job).where(Job.id == old).values(next_attempt_at=now - dt.timedelta(seconds=1))
        )
    assert q.claim("w").job_id == new
    assert q.claim("w").job_id == old
    stat = q.enqueue(_new(3, priority=Priority.STAT))  # priority still comes first
    routine = q.enqueue(_new(4))
    assert q.claim("w").job_id == stat and q.claim("w").job_id == routine


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
    assert q.fail(claim, "destination down", permanent=False, policy=slow) == (JobState.FAILED)
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


def test_claim_by_id_wins_once(db: Database) -> None:
    """A Celery message names a job: the first claim wins, a duplicate message or one for
    a finished job wins nothing."""
    q = JobQueue(db)
    job_id = q.enqueue(_new(1))
    first = q.claim_id(job_id, "w1")
    assert first is not None and first.attempt == 1
    assert q.claim_id(job_id, "w2") is None
    q.finish(first)
    assert q.claim_id(job_id, "w2") is None
    assert q.claim_id(job_id + 1000, "w2") is None


def test_publishing_marks_and_republishes_after_the_interval(db: Database) -> None:
    q = JobQueue(db)
    a, b = q.enqueue(_new(1)), q.enqueue(_new(2, priority=Priority.STAT))
    assert [j.id for j in q.publishable(dt.timedelta(seconds=60))] == [b, a]  # STAT first
    q.mark_published([a, b])
    assert q.publishable(dt.timedelta(seconds=60)) == []
    assert {j.id for j in q.publishable(dt.timedelta(seconds=0))} == {a, b}  # lost? again
    claim = q.claim_id(a, "w")
    assert [j.id for j in q.publishable(dt.timedelta(seconds=0))] == [b]  # taken: not again
    # A failed attempt is published again when its retry is due, not before.
    q.fail(claim, "boom", permanent=False, policy=RetryPolicy(base_s=3600, cap_s=3600, jitter=0))
    assert [j.id for j in q.publishable(dt.timedelta(seconds=60))] == []
    with db.session() as s:
        s.execute(update(Job).where(Job.id == a).values(next_attempt_at=dt.datetime(2000, 1, 1)))
    assert [j.id for j in q.publishable(dt.timedelta(seconds=60))] == [a]


def test_expired_claim_is_named_on_the_job(db: Database) -> None:
    q = JobQueue(db, lease_seconds=0.0)
    job_id = q.enqueue(_new(1))
    q.claim_id(job_id, "worker@gpu1:42")
    q.mark_published([job_id])
    assert q.recover() == [job_id]
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job.state == JobState.QUEUED and job.published_at is None
        assert job.error.startswith("claim of worker@gpu1:42 expired (last heartbeat ")
