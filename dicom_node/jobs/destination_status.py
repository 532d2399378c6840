"""What happened at each destination, read from the delivery record (no table of its own).

For every destination: its last attempt (when, outcome, job, study), attempts by outcome
over a recent window, attempts still under way, the jobs still waiting to deliver to it
(and the oldest of them), and the last error it gave. The admin API
(``/api/destinations/.../status``) and the CLI (``dicom-node destinations status``)
both show it.

    for st in destination_status(db, ["PACS", "AI_ARCHIVE"]):
        print(st.name, st.last_attempt, st.failed, st.oldest_pending)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydantic import BaseModel, Field
from sqlalchemy import func, literal, select

from dicom_node.db import Database, utcnow
from dicom_node.jobs.models import (
    ACTIVE_STATES,
    ATTEMPT_STARTED,
    DeliveryAttempt,
    DeliveryResponse,
    Job,
)

#: Attempt outcomes counted as failed.
FAILED_OUTCOMES = ("transient", "permanent", "interrupted")


class AttemptSummary(BaseModel):
    """One delivery attempt, as the status shows it."""

    at: dt.datetime = Field(description="When the attempt started (UTC).")
    finished_at: dt.datetime | None
    outcome: str = Field(description="started | delivered | transient | permanent | interrupted")
    job_id: int
    study_uid: str
    error: str | None


class PendingDelivery(BaseModel):
    """A job whose results this destination has not accepted yet."""

    job_id: int
    study_uid: str
    state: str
    since: dt.datetime = Field(description="When the job was created (UTC).")
    attempts: int = Field(description="Delivery attempts to this destination so far.")


class DestinationStatus(BaseModel):
    """One destination's delivery history, from the delivery attempts on record."""

    name: str
    configured: bool
    window_hours: float
    last_attempt: AttemptSummary | None
    delivered: int = Field(description="Attempts that delivered everything, in the window.")
    failed: int = Field(description="Attempts that failed or were interrupted, in the window.")
    in_progress: int = Field(description="Attempts started and not finished (any age).")
    instances_delivered: int = Field(
        description="Objects accepted by the attempts started in the window."
    )
    instances_failed: int = Field(
        description="Objects refused or not sent by the attempts started in the window."
    )
    pending_jobs: int = Field(description="Unfinished jobs still to deliver here.")
    oldest_pending: PendingDelivery | None
    last_error: AttemptSummary | None


def _summary(a: DeliveryAttempt, study_uid: str) -> AttemptSummary:
    return AttemptSummary(
        at=a.started_at,
        finished_at=a.finished_at,
        outcome=a.outcome,
        job_id=a.job_id,
        study_uid=study_uid,
        error=a.error,
    )


def _latest(db: Database, names: Sequence[str], *conds: object) -> dict[str, AttemptSummary]:
    """Name -> the newest attempt to it meeting ``conds``: one seek per name, from the
    newest end of (destination, started_at) or of the errors' partial index."""
    out = {}
    with db.session() as s:
        for name in names:
            row = s.execute(
                select(DeliveryAttempt, Job.study_uid)
                .join(Job, Job.id == DeliveryAttempt.job_id)
                .where(DeliveryAttempt.destination == name, *conds)
                .order_by(DeliveryAttempt.started_at.desc(), DeliveryAttempt.id.desc())
                .limit(1)
            ).first()
            if row is not None:
                out[name] = _summary(row[0], row[1])
    return out


def _counts(db: Database, names: Sequence[str], since: dt.datetime) -> dict[str, dict[str, int]]:
    """Name -> attempts started in the window by outcome and their responses by outcome,
    and attempts under way (any age)."""
    out: dict[str, dict[str, int]] = {n: {} for n in names}
    with db.session() as s:
        for name, outcome, n in s.execute(
            select(DeliveryAttempt.destination, DeliveryAttempt.outcome, func.count())
            .where(DeliveryAttempt.destination.in_(names), DeliveryAttempt.started_at >= since)
            .group_by(DeliveryAttempt.destination, DeliveryAttempt.outcome)
        ):
            out[name][outcome] = n
        for name, n in s.execute(
            select(DeliveryAttempt.destination, func.count())
            .where(
                DeliveryAttempt.destination.in_(names),
                # A literal, not a parameter: the partial index's condition must be
                # visible to the planner (SQLite proves it from the SQL text).
                DeliveryAttempt.outcome == literal(ATTEMPT_STARTED, literal_execute=True),
            )
            .group_by(DeliveryAttempt.destination)
        ):
            out[name]["in_progress"] = n
        for name, outcome, n in s.execute(
            select(DeliveryAttempt.destination, DeliveryResponse.outcome, func.count())
            .join(DeliveryResponse, DeliveryResponse.attempt_id == DeliveryAttempt.id)
            .where(DeliveryAttempt.destination.in_(names), DeliveryAttempt.started_at >= since)
            .group_by(DeliveryAttempt.destination, DeliveryResponse.outcome)
        ):
            out[name]["instances_" + outcome] = n
    return out


def _pending(db: Database, names: Sequence[str]) -> dict[str, list[PendingDelivery]]:
    """Name -> the unfinished jobs naming it that it has not accepted, oldest first."""
    wanted = set(names)
    out: dict[str, list[PendingDelivery]] = {n: [] for n in names}
    with db.session() as s:
        jobs = s.execute(
            select(Job.id, Job.study_uid, Job.state, Job.created_at, Job.destinations)
            .where(Job.state.in_(list(ACTIVE_STATES)))
            .order_by(Job.created_at, Job.id)
        ).all()
        ids = [j.id for j in jobs if wanted & set(j.destinations or [])]
        tries: dict[tuple[int, str], int] = {}
        done: set[tuple[int, str]] = set()
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start : start + 500]
            for job_id, dest, outcome, n in s.execute(
                select(
                    DeliveryAttempt.job_id,
                    DeliveryAttempt.destination,
                    DeliveryAttempt.outcome,
                    func.count(),
                )
                .where(DeliveryAttempt.job_id.in_(chunk))
                .group_by(
                    DeliveryAttempt.job_id, DeliveryAttempt.destination, DeliveryAttempt.outcome
                )
            ):
                tries[(job_id, dest)] = tries.get((job_id, dest), 0) + n
                if outcome == "delivered":
                    done.add((job_id, dest))
    for j in jobs:
        for name in wanted & set(j.destinations or []):
            if (j.id, name) not in done:
                out[name].append(
                    PendingDelivery(
                        job_id=j.id,
                        study_uid=j.study_uid,
                        state=j.state,
                        since=j.created_at,
                        attempts=tries.get((j.id, name), 0),
                    )
                )
    return out


def destination_status(
    db: Database,
    names: Sequence[str],
    *,
    configured: Sequence[str] = (),
    window: dt.timedelta = dt.timedelta(hours=24),
    now: dt.datetime | None = None,
) -> list[DestinationStatus]:
    """The status of each destination in ``names`` (``configured``: those in the config)."""
    names = list(dict.fromkeys(names))
    if not names:
        return []
    since = (now or utcnow()) - window
    last = _latest(db, names)
    errors = _latest(db, names, DeliveryAttempt.error.is_not(None))
    counts = _counts(db, names, since)
    pending = _pending(db, names)
    out = []
    for name in names:
        c = counts[name]
        out.append(
            DestinationStatus(
                name=name,
                configured=name in configured,
                window_hours=window.total_seconds() / 3600,
                last_attempt=last.get(name),
                delivered=c.get("delivered", 0),
                failed=sum(c.get(o, 0) for o in FAILED_OUTCOMES),
                in_progress=c.get("in_progress", 0),
                instances_delivered=c.get("instances_delivered", 0),
                instances_failed=c.get("instances_transient", 0) + c.get("instances_permanent", 0),
                pending_jobs=len(pending[name]),
                oldest_pending=pending[name][0] if pending[name] else None,
                last_error=errors.get(name),
            )
        )
    return out


def known_destinations(db: Database) -> list[str]:
    """Every destination name the delivery record mentions (configured or not), in name
    order. A skip scan of the (destination, started_at) index: one seek per name, where
    ``SELECT DISTINCT`` would read an index entry per attempt on record."""
    dest = DeliveryAttempt.__table__.c.destination
    names = select(func.min(dest).label("name")).cte("names", recursive=True)
    after = select(func.min(dest)).where(dest > names.c.name).scalar_subquery()
    names = names.union_all(select(after).where(names.c.name.is_not(None)))
    with db.session() as s:
        return list(s.scalars(select(names.c.name).where(names.c.name.is_not(None))))
