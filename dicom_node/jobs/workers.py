"""Worker records in the database: each `dicom-node worker` reports itself (heartbeat),
so `workers list`, `jobs show` and the sweeper see who is alive and what it can run."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.db import Database
from dicom_node.jobs.models import WorkerRecord, utcnow
from dicom_node.jobs.queue import Claim, JobQueue

log = logging.getLogger(__name__)


@dataclass
class WorkerIdentity:
    """What a worker says about itself."""

    name: str
    host: str
    pid: int
    models: list[str]
    provider: str
    queues: list[str]
    metrics_url: str | None = None
    held: dict[int, Claim] = field(default_factory=dict)


def live_workers(s: Session, lease: dt.timedelta) -> list[WorkerRecord]:
    """Workers that reported within one lease and have not said they stopped."""
    return list(
        s.scalars(
            select(WorkerRecord).where(
                WorkerRecord.stopped_at.is_(None), WorkerRecord.last_seen >= utcnow() - lease
            )
        )
    )


def missing_models(models: Sequence[str] | None, live: Sequence[WorkerRecord]) -> list[str]:
    """A job's models no single live worker has all of ([] if some worker can run it)."""
    need = set(models or [])
    if not need or any(need <= set(w.models or []) for w in live):
        return []
    have: set[str] = set().union(*(set(w.models or []) for w in live)) if live else set()
    return sorted(need - have) or sorted(need)


class Heartbeat:
    """A thread that upserts the worker's row and extends the leases of the jobs it holds
    every ``every`` seconds; ``stop()`` records that the worker stopped."""

    def __init__(self, db: Database, queue: JobQueue, me: WorkerIdentity, every: float) -> None:
        self.db, self.queue, self.me, self.every = db, queue, me, every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="worker-heartbeat", daemon=True)

    def start(self) -> None:
        with self.db.session() as s:
            row = s.get(WorkerRecord, self.me.name) or WorkerRecord(name=self.me.name)
            row.host, row.pid, row.models = self.me.host, self.me.pid, self.me.models
            row.provider, row.queues = self.me.provider, self.me.queues
            row.metrics_url, row.jobs_in_hand = self.me.metrics_url, []
            row.started_at = row.last_seen = utcnow()
            row.stopped_at = None
            s.add(row)
        self._thread.start()

    def hold(self, claim: Claim) -> None:
        """The worker took ``claim`` (its lease was just set): shown in its row now."""
        with self._lock:
            self.me.held[claim.job_id] = claim
            held = list(self.me.held.values())
        self._record(held)

    def release(self, claim: Claim) -> None:
        with self._lock:
            self.me.held.pop(claim.job_id, None)
            held = list(self.me.held.values())
        self._record(held)

    def beat(self) -> None:
        """Extend the leases of the jobs in hand and record the worker as alive."""
        with self._lock:
            held = list(self.me.held.values())
        for claim in held:
            if not self.queue.heartbeat(claim):
                log.warning(
                    "job %s: claim of %s was taken away (cancelled or expired)",
                    claim.job_id,
                    self.me.name,
                )
        self._record(held)

    def _record(self, held: list[Claim]) -> None:
        with self.db.session() as s:
            row = s.get(WorkerRecord, self.me.name)
            if row is not None:
                row.last_seen = utcnow()
                row.jobs_in_hand = sorted(c.job_id for c in held)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception:  # database trouble: the lease may lapse; keep trying
                log.exception("worker heartbeat failed")

    def stop(self) -> None:
        self._stop.set()
        try:
            with self.db.session() as s:
                row = s.get(WorkerRecord, self.me.name)
                if row is not None:
                    row.stopped_at = row.last_seen = utcnow()
                    row.jobs_in_hand = []
        except Exception:
            log.exception("could not record that worker %s stopped", self.me.name)
