"""The job pipeline's Prometheus observations: stage latencies, a result's trip from the
last instance to a destination, and the scores each model gave.

Every label value comes from the configuration or a model's manifest (model, label,
destination names), never from a UID, so the number of series stays bounded. They are
recorded in the process that runs the job: ``serve`` (embedded executor) or a
``dicom-node worker``, each of which serves its own ``/metrics``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy import select

from ai.types import ImageResult
from dicom_node import metrics
from dicom_node.db import Database, utcnow
from dicom_node.index.tables import Group
from dicom_node.jobs.models import Job

log = logging.getLogger(__name__)

#: The ``model`` label of a job that runs no model (it forwards its inputs).
FORWARD = "(forward)"


def models_of(job: Job) -> list[str]:
    """The ``model`` label values of a job's observations: one per model it runs."""
    return list(job.models) if job.action == "infer" and job.models else [FORWARD]


def _seconds(start: dt.datetime | None, end: dt.datetime) -> float | None:
    return None if start is None else max((end - start).total_seconds(), 0.0)


def observe_stage(models: Sequence[str], stage: str, seconds: float) -> None:
    """One observation of ``stage`` per model."""
    for m in models:
        metrics.JOB_STAGE_SECONDS.labels(m, stage).observe(max(seconds, 0.0))


def observe_queue_wait(job: Job) -> None:
    """The claimed job's wait: from when it became due (created, or due again after a
    failed attempt) to its claim (``started_at``)."""
    due = max(t for t in (job.created_at, job.next_attempt_at) if t is not None)
    waited = _seconds(due, job.started_at) if job.started_at is not None else None
    if waited is not None:
        observe_stage(models_of(job), "queue", waited)


def observe_scores(model: str, results: Sequence[ImageResult]) -> None:
    """Each label's probability of each scored frame."""
    for r in results:
        for label in r.labels:
            metrics.LABEL_SCORE.labels(model, label.name).observe(label.probability)


class DeliveredClock:
    """Observes, per destination that accepted a job's results, the time since the last
    instance of the job's group arrived (read once, when first needed)."""

    def __init__(self, db: Database, job: Job) -> None:
        self.db = db
        self.job = job
        self._last: dt.datetime | None = None

    def __call__(self, destination: str) -> None:
        try:
            if self._last is None:
                with self.db.session() as s:
                    self._last = s.scalar(
                        select(Group.last_received).where(Group.id == self.job.group_id)
                    )
            seconds = _seconds(self._last, utcnow())
        except Exception:  # a metric never fails a delivery
            log.debug("job %s: no last-instance time", self.job.id, exc_info=True)
            return
        if seconds is None:
            return
        for m in models_of(self.job):
            metrics.LAST_INSTANCE_TO_DELIVERED.labels(m, destination).observe(seconds)
