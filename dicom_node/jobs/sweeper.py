"""The publisher side of ``jobs.executor: celery``, a thread in ``serve``.

Every ``sweep_seconds`` (and whenever routing queues work) it: puts jobs whose
worker stopped reporting back to queued (lease expired); publishes each claimable job
never published, or published ``republish_seconds`` ago and still not taken (its message
was lost: broker restarted, Redis flushed); and logs, once per job, a job that waits
because no live worker has its model(s).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from celery import Celery
from sqlalchemy import select

from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.jobs.broker import TASK, make_app, queue_for
from dicom_node.jobs.models import Job, JobState
from dicom_node.jobs.queue import JobQueue
from dicom_node.jobs.workers import live_workers, missing_models
from dicom_node.settings.jobs import JobsSettings

log = logging.getLogger(__name__)


class Sweeper:
    """Feeds the broker from the jobs table; never the other way round."""

    def __init__(self, db: Database, queue: JobQueue, settings: Callable[[], JobsSettings]) -> None:
        self.db, self.queue, self.settings = db, queue, settings
        self.app: Celery = make_app(settings().broker_url)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._broker_down = False
        self._waiting_logged: set[int] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-sweeper", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:  # database trouble: log and try again next round
                log.exception("job sweep failed")
            self._wake.wait(self.settings().sweep_seconds)
            self._wake.clear()

    def sweep(self) -> int:
        """One round; returns how many messages were published."""
        settings = self.settings()
        self.queue.recover()
        jobs = self.queue.publishable(dt.timedelta(seconds=settings.republish_seconds))
        published = []
        for job in jobs:
            if not self._publish(job):
                break
            published.append(job.id)
        if published:
            self.queue.mark_published(published)
        self._note_waiting()
        return len(published)

    def _publish(self, job: Job) -> bool:
        again = job.published_at is not None
        try:
            self.app.send_task(TASK, args=[job.id], queue=queue_for(job.models), retry=False)
        # Broker down (kombu raises many types): the job stays unpublished, tried next round.
        except Exception as exc:  # noqa: BLE001
            if not self._broker_down:
                log.error(
                    "cannot publish job %s to the broker (%s: %s); retrying every sweep",
                    job.id,
                    type(exc).__name__,
                    exc,
                )
            self._broker_down = True
            return False
        if self._broker_down:
            log.warning("broker reachable again: publishing queued jobs")
            self._broker_down = False
        metrics.JOBS_PUBLISHED.labels("again" if again else "first").inc()
        (log.warning if again else log.debug)(
            "job %s study %s %spublished to %s",
            job.id,
            job.study_uid,
            "re-" if again else "",
            queue_for(job.models),
        )
        return True

    def _note_waiting(self) -> None:
        """Log once per job that waits for a worker with its model(s)."""
        with self.db.session() as s:
            live = live_workers(s, self.queue.lease)
            rows = s.execute(
                select(Job.id, Job.models, Job.study_uid).where(
                    Job.state == JobState.QUEUED, Job.action == "infer"
                )
            ).all()
        waiting = [(job_id, study, missing_models(models, live)) for job_id, models, study in rows]
        waiting = [w for w in waiting if w[2]]
        metrics.JOBS_WAITING_FOR_WORKER.set(len(waiting))
        self._waiting_logged &= {w[0] for w in waiting}  # forget jobs that left the wait
        for job_id, study, missing in waiting:
            if job_id not in self._waiting_logged:
                self._waiting_logged.add(job_id)
                log.warning(
                    "job %s study %s waits: no live worker has model(s) %s "
                    "(see `dicom-node workers list`)",
                    job_id,
                    study,
                    ", ".join(missing),
                )
