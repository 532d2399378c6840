"""Job tables: one job per (group, matched rule), its outputs and every delivery attempt."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicom_node.db import Base, utcnow


class JobState(enum.StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker is inferring and writing results
    DELIVERING = "delivering"  # results written; sending them
    FAILED = "failed"  # last attempt failed; claimable again after next_attempt_at
    DONE = "done"  # every destination accepted every result
    DEAD = "dead"  # attempts exhausted or a permanent error; needs an admin
    CANCELLED = "cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING, JobState.FAILED)
# A job's stage timestamps, in the order its stages run (shown by the API and the CLI).
STAGE_TIMES = (
    "received_at",
    "complete_at",
    "created_at",
    "started_at",
    "inferred_at",
    "written_at",
    "delivered_at",
    "finished_at",
)


class Priority(enum.IntEnum):
    STAT = 0
    ROUTINE = 1


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("group_id", "rule_name", name="uq_job_group_rule"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, index=True)
    rule_name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))  # infer | forward
    models: Mapped[list] = mapped_column(JSON, default=list)
    destinations: Mapped[list] = mapped_column(JSON, default=list)
    instance_uids: Mapped[list] = mapped_column(JSON, default=list)  # the selected inputs
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=Priority.ROUTINE)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # executor: celery. When its message last went to the broker (None: not yet, or due
    # again after a failed attempt or an expired lease).
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # Stage timestamps: the study's first/last instance, then each stage of the job.
    received_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    complete_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    inferred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    written_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    outputs: Mapped[list[JobOutput]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobOutput.id"
    )
    attempts_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="DeliveryAttempt.id"
    )


class JobOutput(Base):
    """A result object a job wrote (SR, heatmap SC, findings card) or forwards."""

    __tablename__ = "job_outputs"
    __table_args__ = (UniqueConstraint("job_id", "sop_instance_uid", name="uq_output_sop"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # sr | heatmap | card | kos | pmap | forward
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="outputs")


#: Attempt outcomes besides the report's (delivered | transient | permanent): ``started``
#: while it runs; ``interrupted`` when the process died during it (finished_at stays NULL).
ATTEMPT_STARTED = "started"
ATTEMPT_INTERRUPTED = "interrupted"


class DeliveryAttempt(Base):
    """One try at sending a job's outputs to one destination.

    Written when the attempt starts, finished when the deliverer returns; each response
    in between is a :class:`DeliveryResponse` row committed as it arrives.
    """

    __tablename__ = "delivery_attempts"
    # The destination status reads one destination's newest attempt, its attempts in a
    # window, those under way and its newest error by seeks in these, never a walk of its
    # whole history (migration 0004; jobs/destination_status.py).
    __table_args__ = (
        # outcome: the window's counts by outcome read the index alone; and a wider row
        # makes SQLite prefer the errors' partial index where both could serve.
        Index(
            "ix_delivery_attempts_destination_started_at", "destination", "started_at", "outcome"
        ),
        Index(  # outcome too: two equalities make SQLite's planner prefer it, covering
            "ix_delivery_attempts_under_way",
            "destination",
            "outcome",
            sqlite_where=text("outcome = 'started'"),
            postgresql_where=text("outcome = 'started'"),
        ),
        Index(
            "ix_delivery_attempts_errors",
            "destination",
            "started_at",
            sqlite_where=text("error IS NOT NULL"),
            postgresql_where=text("error IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # started | delivered | transient | permanent | interrupted
    outcome: Mapped[str] = mapped_column(String(16), default=ATTEMPT_STARTED)
    planned: Mapped[int] = mapped_column(Integer, default=0)  # files this attempt sends
    sent: Mapped[int] = mapped_column(Integer, default=0)  # responses (outcomes) at the end
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="attempts_log")
    responses: Mapped[list[DeliveryResponse]] = relationship(
        back_populates="attempt",
        cascade="all, delete-orphan",
        order_by="DeliveryResponse.id",
        passive_deletes=True,
    )


class DeliveryResponse(Base):
    """One instance's fate in one attempt, recorded as the destination answered."""

    __tablename__ = "delivery_responses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("delivery_attempts.id", ondelete="CASCADE"), index=True
    )
    sop_instance_uid: Mapped[str] = mapped_column(String(64))  # "" for an unreadable file
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | transient | permanent
    code: Mapped[int | None] = mapped_column(Integer)  # DIMSE / HTTP / STOW-RS status
    warning: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    attempt: Mapped[DeliveryAttempt] = relationship(back_populates="responses")


class WorkerRecord(Base):
    """A `dicom-node worker` process as it last reported itself (heartbeat)."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    models: Mapped[list] = mapped_column(JSON, default=list)
    provider: Mapped[str] = mapped_column(String(255), default="")
    queues: Mapped[list] = mapped_column(JSON, default=list)
    jobs_in_hand: Mapped[list] = mapped_column(JSON, default=list)  # job ids it holds
    metrics_url: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
