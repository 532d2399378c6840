"""The durable job queue: create, claim, advance, fail, recover, retry, cancel.

Every transition is a compare-and-set UPDATE on the job's current state, so several
workers (threads or processes, on SQLite or PostgreSQL) never claim the same job.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from dicom_node.db import Database
from dicom_node.delivery.retry import RetryPolicy, next_attempt
from dicom_node.jobs.models import ACTIVE_STATES, Job, JobState, utcnow

_HELD = (JobState.RUNNING, JobState.DELIVERING)  # the states of a job a worker holds
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewJob:
    """What routing asks for: one job per (group, matched rule)."""

    group_id: int
    rule_name: str
    action: str
    study_uid: str
    models: Sequence[str] = ()
    destinations: Sequence[str] = ()
    instance_uids: Sequence[str] = ()
    priority: int = 1
    received_at: dt.datetime | None = None
    complete_at: dt.datetime | None = None


@dataclass
class Claim:
    """A job a worker holds; ``resume_delivery`` skips inference already written."""

    job_id: int
    worker: str
    attempt: int
    resume_delivery: bool


class JobQueue:
    """Operations on the jobs table. Stateless apart from the database."""

    def __init__(self, db: Database, *, lease_seconds: float = 120.0) -> None:
        self.db = db
        self.lease = dt.timedelta(seconds=lease_seconds)

    # -- creation -----------------------------------------------------------------
    def enqueue(self, new: NewJob) -> int | None:
        """Insert a job; None if the (group, rule) job already exists."""
        job = Job(
            group_id=new.group_id,
            rule_name=new.rule_name,
            action=new.action,
            study_uid=new.study_uid,
            models=list(new.models),
            destinations=list(new.destinations),
            instance_uids=list(new.instance_uids),
            priority=int(new.priority),
            received_at=new.received_at,
            complete_at=new.complete_at,
        )
        try:
            with self.db.session() as s:
                s.add(job)
                s.flush()
                job_id = job.id
        except IntegrityError:
            log.info("job for group %s rule %s already exists", new.group_id, new.rule_name)
            return None
        log.info(
            "queued job %s: study %s rule %s (%s)",
            job_id,
            new.study_uid,
            new.rule_name,
            new.action,
        )
        return job_id

    # -- claiming -----------------------------------------------------------------
    @staticmethod
    def _claimable(now: dt.datetime):  # type: ignore[no-untyped-def]
        return or_(
            Job.state == JobState.QUEUED,
            and_(Job.state == JobState.FAILED, Job.next_attempt_at <= now),
        )

    def claim(self, worker: str) -> Claim | None:
        """Atomically take the most urgent claimable job, or None: by priority, then by
        when it became due (queued, or its retry's time), so the retries of older jobs to
        a dead destination, due again each time a worker frees up, cannot keep a newer
        job waiting until they die."""
        due = func.coalesce(Job.next_attempt_at, Job.created_at)
        with self.db.session() as s:
            candidates = s.scalars(
                select(Job.id)
                .where(self._claimable(utcnow()))
                .order_by(Job.priority, due, Job.id)
                .limit(8)
            ).all()
        for job_id in candidates:
            claim = self.claim_id(job_id, worker)
            if claim is not None:
                return claim
        return None

    def claim_id(self, job_id: int, worker: str) -> Claim | None:
        """Take job ``job_id`` if it is claimable now (compare-and-set), else None: a
        second message for the same job, or one for a job another worker holds, wins
        nothing."""
        now = utcnow()
        with self.db.session() as s:
            won = s.execute(
                update(Job)
                .where(Job.id == job_id, self._claimable(now))
                .values(
                    state=JobState.RUNNING,
                    claimed_by=worker,
                    heartbeat_at=now,
                    attempts=Job.attempts + 1,
                    started_at=now,
                    error=None,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if won != 1:
                return None
            job = s.get(Job, job_id)
            assert job is not None
            return Claim(
                job_id=job_id,
                worker=worker,
                attempt=job.attempts,
                resume_delivery=job.written_at is not None and bool(job.outputs),
            )

    def heartbeat(self, claim: Claim) -> bool:
        """Extend the lease; False if the job was taken away (cancelled, reclaimed)."""
        with self.db.session() as s:
            return (
                s.execute(
                    update(Job)
                    .where(
                        Job.id == claim.job_id,
                        Job.claimed_by == claim.worker,
                        Job.state.in_(_HELD),
                    )
                    .values(heartbeat_at=utcnow())
                ).rowcount
                == 1
            )

    # -- stage transitions ----------------------------------------------------------
    def mark(self, claim: Claim, **stamps: dt.datetime | str) -> None:
        """Set stage timestamps / state on a job this worker holds."""
        with self.db.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == claim.job_id, Job.claimed_by == claim.worker)
                .values(heartbeat_at=utcnow(), **stamps)
            )

    def finish(self, claim: Claim) -> None:
        """Every destination accepted everything: done."""
        now = utcnow()
        self.mark(claim, state=JobState.DONE, finished_at=now, delivered_at=now)
        log.info("job %s done", claim.job_id)

    def fail(self, claim: Claim, error: str, *, permanent: bool, policy: RetryPolicy) -> JobState:
        """Record a failed attempt: due again when ``policy`` says, else dead."""
        with self.db.session() as s:
            job = s.get(Job, claim.job_id)
            assert job is not None
            if job.state == JobState.CANCELLED or job.claimed_by != claim.worker:
                return JobState(job.state)  # cancelled, or no longer this claim's job
            due = next_attempt(policy, job.attempts, utcnow(), transient=not permanent)
            job.state = JobState.FAILED if due is not None else JobState.DEAD
            job.next_attempt_at = due
            job.finished_at = None if due is not None else utcnow()
            job.error = error[:4000]
            job.claimed_by = None
            job.published_at = None  # executor: celery: published again when due
            state = JobState(job.state)
        log.warning(
            "job %s attempt %s failed (%s): %s", claim.job_id, claim.attempt, state.value, error
        )
        return state

    # -- recovery and admin -----------------------------------------------------------
    def recover(self, *, worker_prefix: str | None = None) -> list[int]:
        """Put running jobs back to queued: those whose lease expired, and (at startup)
        every job claimed by a previous process of this node (``worker_prefix``). The
        job's error names the worker whose claim ended."""
        stale = utcnow() - self.lease
        cond = Job.heartbeat_at < stale
        if worker_prefix is not None:
            cond = or_(cond, Job.claimed_by.like(f"{worker_prefix}%"))
        with self.db.session() as s:
            held = s.execute(
                select(Job.id, Job.claimed_by, Job.heartbeat_at).where(
                    Job.state.in_([JobState.RUNNING, JobState.DELIVERING]), cond
                )
            ).all()
            for job_id, worker, beat in held:
                note = (
                    f"claim of {worker} expired (last heartbeat "
                    f"{beat:%Y-%m-%d %H:%M:%S} UTC); queued again"
                    if beat
                    else f"claim of {worker} ended; queued again"
                )
                s.execute(
                    update(Job)
                    .where(
                        Job.id == job_id,
                        Job.claimed_by == worker,
                        Job.state.in_(_HELD),
                    )
                    .values(
                        state=JobState.QUEUED,
                        claimed_by=None,
                        heartbeat_at=None,
                        published_at=None,
                        error=note,
                    )
                )
        for job_id, worker, _ in held:
            log.warning(
                "job %s was running when its worker %s stopped: queued again", job_id, worker
            )
        return [h[0] for h in held]

    def retry(self, job_id: int) -> bool:
        """Admin: queue a dead, failed or cancelled job again with fresh attempts."""
        with self.db.session() as s:
            return (
                s.execute(
                    update(Job)
                    .where(
                        Job.id == job_id,
                        Job.state.in_([JobState.DEAD, JobState.FAILED, JobState.CANCELLED]),
                    )
                    .values(
                        state=JobState.QUEUED,
                        attempts=0,
                        next_attempt_at=None,
                        error=None,
                        finished_at=None,
                        published_at=None,
                    )
                ).rowcount
                == 1
            )

    def cancel(self, job_id: int) -> bool:
        """Admin: cancel a job that has not finished. A running worker notices at its
        next heartbeat and stops without delivering."""
        with self.db.session() as s:
            return (
                s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
                    .values(state=JobState.CANCELLED, finished_at=utcnow(), claimed_by=None)
                ).rowcount
                == 1
            )

    def holds(self, claim: Claim) -> bool:
        """Whether ``claim`` still holds its job: not cancelled, nor cancelled and queued
        again (perhaps taken by another worker), nor reclaimed after its lease ran out."""
        with self.db.session() as s:
            row = s.execute(
                select(Job.state, Job.claimed_by).where(Job.id == claim.job_id)
            ).one_or_none()
        return row is not None and row.claimed_by == claim.worker and row.state in _HELD

    # -- publishing (executor: celery) -------------------------------------------------
    def publishable(self, republish: dt.timedelta, limit: int = 500) -> list[Job]:
        """Claimable jobs never published, or published ``republish`` ago and still not
        taken (their message may be lost). Detached rows, most urgent first."""
        now = utcnow()
        with self.db.session() as s:
            jobs = s.scalars(
                select(Job)
                .where(
                    self._claimable(now),
                    or_(Job.published_at.is_(None), Job.published_at < now - republish),
                )
                .order_by(Job.priority, Job.id)
                .limit(limit)
            ).all()
            for j in jobs:
                s.expunge(j)
        return list(jobs)

    def mark_published(self, job_ids: Sequence[int]) -> None:
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id.in_(list(job_ids))).values(published_at=utcnow()))
