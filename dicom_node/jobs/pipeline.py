"""One job, start to end: infer (:mod:`.infer`), write (:mod:`.write`), deliver
(:mod:`.deliver`), each stage in its own module; this one orders them and records the
outcome.

A retried job whose results were already written skips straight to delivery, and only
to the destinations that have not accepted them yet; result UIDs are deterministic, so
even a re-run of inference replaces rather than duplicates. Failures are typed
(:mod:`.errors`): transient ones are retried with backoff, permanent ones and bugs are
recorded once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from ai.registry import ModelRegistry
from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.deliver import deliver_outputs
from dicom_node.jobs.errors import (
    JobCancelled,
    PermanentJobError,
    TransientJobError,
    one_line,
)
from dicom_node.jobs.infer import fetch_input, load_inputs, run_model
from dicom_node.jobs.inputs import JobInputs, SharedFilesystem
from dicom_node.jobs.models import Job, JobState, utcnow
from dicom_node.jobs.queue import Claim, JobQueue
from dicom_node.jobs.stage_metrics import (
    DeliveredClock,
    models_of,
    observe_queue_wait,
    observe_stage,
)
from dicom_node.jobs.write import Output, record_outputs, write_results, written_outputs
from dicom_node.settings.root import NodeConfig
from dicom_node.store.writer import InstanceStore

__all__ = ["JobCancelled", "JobRunner", "PermanentJobError", "TransientJobError"]

log = logging.getLogger(__name__)


class JobRunner:
    """Runs claimed jobs; the executor calls it once per claim."""

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        store: InstanceStore,
        registry: ModelRegistry,
        config: Callable[[], NodeConfig],
        inputs: JobInputs | None = None,
    ) -> None:
        self.db = db
        self.inputs: JobInputs = inputs or SharedFilesystem()
        self.queue = queue
        self.store = store
        self.registry = registry
        self.config = config
        self.attempts = AttemptLog(db)

    def __call__(self, claim: Claim) -> None:
        policy = self.config().jobs.retry
        try:
            self._run(claim)
        except JobCancelled:
            log.info("job %s stopped: cancelled, or another claim holds it", claim.job_id)
        except PermanentJobError as exc:
            log.debug("job %s: permanent failure", claim.job_id, exc_info=True)
            self.queue.fail(claim, one_line(str(exc)), permanent=True, policy=policy)
            metrics.JOBS_FINISHED.labels("dead").inc()
        except (TransientJobError, SQLAlchemyError) as exc:  # the database may be busy
            log.warning(
                "job %s attempt %s failed: %s", claim.job_id, claim.attempt, one_line(str(exc))
            )
            log.debug("job %s attempt %s failed", claim.job_id, claim.attempt, exc_info=True)
            state = self.queue.fail(
                claim, f"{type(exc).__name__}: {exc}", permanent=False, policy=policy
            )
            metrics.JOBS_FINISHED.labels(state.value).inc()
        except Exception as exc:  # a bug: retrying would fail the same way
            log.exception("job %s attempt %s: internal error", claim.job_id, claim.attempt)
            self.queue.fail(
                claim, f"internal error: {type(exc).__name__}: {exc}", permanent=True, policy=policy
            )
            metrics.JOBS_FINISHED.labels("dead").inc()

    def crashed(self, claim: Claim, exc: Exception) -> None:
        """Executor hook for an exception that escaped ``__call__`` (recording failed)."""
        policy = self.config().jobs.retry
        self.queue.fail(claim, f"internal error: {exc!r}", permanent=False, policy=policy)

    def _run(self, claim: Claim) -> None:
        job = self._load_job(claim.job_id)
        observe_queue_wait(job)
        outputs = written_outputs(self.db, claim.job_id) if claim.resume_delivery else None
        if outputs is not None:
            log.info("job %s: results already written, resuming delivery", claim.job_id)
        else:
            outputs = self._produce(claim, job)
        self._check(claim)
        self.queue.mark(claim, state=JobState.DELIVERING)
        started = time.monotonic()
        deliver_outputs(
            self.attempts,
            job,
            outputs,
            self.config().destinations,
            check=lambda: self._check(claim),
            on_delivered=DeliveredClock(self.db, job),
        )
        self.queue.finish(claim)
        observe_stage(models_of(job), "deliver", time.monotonic() - started)
        metrics.JOBS_FINISHED.labels("done").inc()

    def _produce(self, claim: Claim, job: Job) -> list[Output]:
        """Infer and write for each of the job's models (or forward its inputs)."""
        inputs = load_inputs(self.db, job)
        if job.action == "forward":
            outputs = [
                Output(
                    "forward", r.sop_class_uid, r.sop_instance_uid, str(fetch_input(self.inputs, r))
                )
                for r in inputs
            ]
        else:
            outputs = []
            for name in job.models:
                started = time.monotonic()
                inference = run_model(self.registry, name, job, inputs, self.inputs)
                self.queue.mark(claim, inferred_at=utcnow())
                observe_stage([name], "infer", time.monotonic() - started)
                log.info(
                    "job %s study %s: %s ran on %d image(s) via %s",
                    claim.job_id,
                    job.study_uid,
                    name,
                    len(inference.sources),
                    inference.model.provider,
                )
                self._check(claim)
                # The job's creation time stamps the results: a re-run writes identical objects.
                options = self.config().results.write_options(created_at=job.created_at)
                started = time.monotonic()
                outputs += write_results(self.store, job, inference, options)
                self.queue.mark(claim, written_at=utcnow())
                observe_stage([name], "write", time.monotonic() - started)
        record_outputs(self.db, claim.job_id, outputs)
        return outputs

    def _check(self, claim: Claim) -> None:
        # Not only "cancelled": a job cancelled and queued again while this worker ran it
        # may be another worker's now, and both delivered it.
        if not self.queue.holds(claim):
            raise JobCancelled

    def _load_job(self, job_id: int) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise PermanentJobError(f"job {job_id} is no longer on record")
            s.expunge(job)
            return job
