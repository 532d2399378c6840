"""The durable job queue: create, claim, advance, fail, recover, retry, cancel.

Every transition is a compare-and-set UPDATE on the job's current state, so several
workers (threads or processes, on SQLite or PostgreSQL) never claim the same job.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from dicom_node.db import Database
from dicom_node.delivery.retry import RetryPolicy, next_attempt
from dicom_node.jobs.models import ACTIVE_STATES, Job, JobState, utcnow

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
            "queued job %s: study %s rule %s (%s)", job_id, new.study_uid, new.rule_name,
            new.action,
        )
        return job_id

    # -- claiming -----------------------------------------------------------------
    def claim(self, worker: str) -> Claim | None:
        """Atomically take the most urgent claimable job, or None."""
        now = utcnow()
        claimable = or_(
            Job.state == JobState.QUEUED,
            and_(Job.state == JobState.FAILED, Job.next_attempt_at <= now),
        )
        with self.db.session() as s:
            candidates = s.scalars(
                select(Job.id).where(claimable).order_by(Job.priority, Job.id).limit(8)
            ).all()
            for job_id in candidates:
                won = s.execute(
                    update(Job)
                    .where(Job.id == job_id, claimable)
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
                if won == 1:
                    job = s.get(Job, job_id)
                    assert job is not None
                    return Claim(
                        job_id=job_id,
                        worker=worker,
                        attempt=job.attempts,
                        resume_delivery=job.written_at is not None and bool(job.outputs),
                    )
        return None

    def heartbeat(self, claim: Claim) -> bool:
        """Extend the lease; False if the job was taken away (cancelled, reclaimed)."""
        with self.db.session() as s:
            return (
                s.execute(
                    update(Job)
                    .where(
                        Job.id == claim.job_id,
                        Job.claimed_by == claim.worker,
                        Job.state.in_([JobState.RUNNING, JobState.DELIVERING]),
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

    def fail(self, claim: Claim, error: str, *, permanent: bool,
             policy: RetryPolicy) -> JobState:
        """Record a failed attempt: due again when ``policy`` says, else dead."""
        with self.db.session() as s:
            job = s.get(Job, claim.job_id)
            assert job is not None
            if job.state == JobState.CANCELLED:
                return JobState.CANCELLED
            due = next_attempt(policy, job.attempts, utcnow(), transient=not permanent)
            job.state = JobState.FAILED if due is not None else JobState.DEAD
            job.next_attempt_at = due
            job.finished_at = None if due is not None else utcnow()
            job.error = error[:4000]
            job.claimed_by = None
            state = JobState(job.state)
        log.warning(
            "job %s attempt %s failed (%s): %s", claim.job_id, claim.attempt, state.value, error
        )
        return state

    # -- recovery and admin -----------------------------------------------------------
    def recover(self, *, worker_prefix: str | None = None) -> list[int]:
        """Put running jobs back to queued: those whose lease expired, and (at startup)
        every job claimed by a previous process of this node (``worker_prefix``)."""
        stale = utcnow() - self.lease
        cond = Job.heartbeat_at < stale
        if worker_prefix is not None:
            cond = or_(cond, Job.claimed_by.like(f"{worker_prefix}%"))
        with self.db.session() as s:
            ids = s.scalars(
                select(Job.id).where(
                    Job.state.in_([JobState.RUNNING, JobState.DELIVERING]), cond
                )
            ).all()
            if ids:
                s.execute(
                    update(Job)
                    .where(Job.id.in_(ids))
                    .values(state=JobState.QUEUED, claimed_by=None, heartbeat_at=None)
                )
        for job_id in ids:
            log.warning("job %s was running when its worker stopped: queued again", job_id)
        return list(ids)

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
                        state=JobState.QUEUED, attempts=0, next_attempt_at=None, error=None,
                        finished_at=None,
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

    def is_cancelled(self, job_id: int) -> bool:
        with self.db.session() as s:
            return s.scalar(select(Job.state).where(Job.id == job_id)) == JobState.CANCELLED
