"""The delivery record: each attempt committed when it starts, each response as it arrives.

A crash (kill -9, power loss of the process) can then lose at most the response in
flight: what the destination accepted before is on record and is not sent again. An
attempt the process did not live to finish keeps ``finished_at`` NULL; the next worker
to deliver the job marks it ``interrupted`` (it stays in the job's history).

    log = AttemptLog(db)
    log.interrupt_unfinished(job_id, study_uid)      # before delivering a claimed job
    accepted = log.accepted(job_id)                  # destination -> SOP UIDs it took
    attempt = log.start(job_id, "pacs", planned=len(files), protocol="dimse")
    report = deliver(dest, files, on_outcomes=attempt.record)
    attempt.finish(report)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import func, select, update

from dicom_node import metrics
from dicom_node.db import Database, utcnow
from dicom_node.delivery.report import DeliveryReport, InstanceOutcome
from dicom_node.jobs.models import (
    ATTEMPT_INTERRUPTED,
    ATTEMPT_STARTED,
    DeliveryAttempt,
    DeliveryResponse,
)

__all__ = ["AttemptLog", "AttemptRecord"]

log = logging.getLogger(__name__)


class AttemptRecord:
    """One attempt under way: records its responses, then its end."""

    def __init__(
        self, db: Database, attempt_id: int, destination: str, label: str, protocol: str
    ) -> None:
        self.db = db
        self.id = attempt_id
        self.destination = destination
        self.label = label
        self.protocol = protocol  # the destination's kind: a metrics label

    def record(self, outcomes: Sequence[InstanceOutcome]) -> None:
        """Commit the responses that just arrived (one transaction); count them."""
        with self.db.session() as s:
            s.add_all(
                DeliveryResponse(
                    attempt_id=self.id,
                    sop_instance_uid=o.sop_instance_uid,
                    outcome=o.outcome,
                    code=o.code,
                    warning=o.warning,
                    error=(o.error or None) and o.error[:4000],
                    elapsed_s=round(o.elapsed_s, 4),
                )
                for o in outcomes
            )
        for o in outcomes:
            metrics.DELIVERY_INSTANCES.labels(self.destination, self.protocol, o.outcome).inc()
            log.debug(
                "[%s] %s -> %s: %s%s",
                self.label,
                o.sop_instance_uid,
                self.destination,
                o.outcome,
                f" ({o.error})" if o.error else "",
            )

    def finish(self, report: DeliveryReport) -> None:
        """Stamp the end and the verdict of the attempt."""
        error = report.error or (report.summary() if not report.ok else None)
        with self.db.session() as s:
            s.execute(
                update(DeliveryAttempt)
                .where(DeliveryAttempt.id == self.id)
                .values(
                    finished_at=utcnow(),
                    outcome=report.status,
                    sent=len(report.outcomes),
                    accepted=len(report.delivered),
                    error=error[:4000] if error else None,
                )
            )
        metrics.DELIVERY_ATTEMPTS.labels(self.destination, self.protocol, report.status).inc()


class AttemptLog:
    """Reads and writes a job's delivery attempts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(
        self,
        job_id: int,
        destination: str,
        *,
        planned: int,
        label: str = "",
        protocol: str = "unknown",
    ) -> AttemptRecord:
        """Commit a new attempt (outcome ``started``, no end time) before anything is sent."""
        with self.db.session() as s:
            row = DeliveryAttempt(
                job_id=job_id,
                destination=destination,
                started_at=utcnow(),
                outcome=ATTEMPT_STARTED,
                planned=planned,
            )
            s.add(row)
            s.flush()
            attempt_id = row.id
        log.info(
            "[%s] delivery attempt %d to %s started: %d object(s)",
            label,
            attempt_id,
            destination,
            planned,
        )
        return AttemptRecord(self.db, attempt_id, destination, label, protocol)

    def accepted(self, job_id: int) -> dict[str, set[str]]:
        """Destination -> SOP Instance UIDs it accepted in any earlier attempt of the job,
        interrupted ones included (their responses were committed as they came)."""
        out: dict[str, set[str]] = {}
        with self.db.session() as s:
            rows = s.execute(
                select(DeliveryAttempt.destination, DeliveryResponse.sop_instance_uid)
                .join(DeliveryResponse, DeliveryResponse.attempt_id == DeliveryAttempt.id)
                .where(DeliveryAttempt.job_id == job_id, DeliveryResponse.outcome == "delivered")
            ).all()
        for destination, uid in rows:
            out.setdefault(destination, set()).add(uid)
        return out

    def interrupt_unfinished(
        self, job_id: int, study_uid: str = "", protocols: Mapping[str, str] | None = None
    ) -> int:
        """Mark the job's attempts that never finished (the process died during them) as
        ``interrupted``; call only while holding the job's claim. Returns how many.
        ``protocols``: destination name -> kind, for the metrics."""
        with self.db.session() as s:
            rows = s.execute(
                select(
                    DeliveryAttempt.id,
                    DeliveryAttempt.destination,
                    DeliveryAttempt.planned,
                    func.count(DeliveryResponse.id),
                )
                .outerjoin(
                    DeliveryResponse,
                    (DeliveryResponse.attempt_id == DeliveryAttempt.id)
                    & (DeliveryResponse.outcome == "delivered"),
                )
                .where(DeliveryAttempt.job_id == job_id, DeliveryAttempt.outcome == ATTEMPT_STARTED)
                .group_by(DeliveryAttempt.id, DeliveryAttempt.destination, DeliveryAttempt.planned)
            ).all()
            for attempt_id, _dest, planned, accepted in rows:
                s.execute(
                    update(DeliveryAttempt)
                    .where(DeliveryAttempt.id == attempt_id)
                    .values(
                        outcome=ATTEMPT_INTERRUPTED,
                        accepted=accepted,
                        error=f"interrupted: the node stopped after {accepted} of "
                        f"{planned} object(s) were accepted",
                    )
                )
        for attempt_id, destination, planned, accepted in rows:
            protocol = (protocols or {}).get(destination, "unknown")
            metrics.DELIVERY_ATTEMPTS.labels(destination, protocol, ATTEMPT_INTERRUPTED).inc()
            log.warning(
                "job %s study %s: delivery attempt %d to %s was interrupted after %d "
                "of %d object(s) were accepted; sending only the rest",
                job_id,
                study_uid,
                attempt_id,
                destination,
                accepted,
                planned,
            )
        return len(rows)
