"""One job, start to end: infer, write the SR and heatmaps, deliver, record every attempt
(at its start, and each response as it arrives: see ``jobs/attempts.py``).

A retried job whose results were already written skips straight to delivery, and only
to the destinations that have not accepted them yet; result UIDs are deterministic, so
even a re-run of inference replaces rather than duplicates.
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from sqlalchemy import select

import sr_writer
from ai.registry import ModelRegistry
from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.delivery import deliver
from dicom_node.delivery.retry import RetryPolicy
from dicom_node.index.tables import Instance
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.convert import image_results
from dicom_node.jobs.models import Job, JobOutput, JobState, utcnow
from dicom_node.jobs.queue import Claim, JobQueue
from dicom_node.settings.root import NodeConfig
from dicom_node.store.writer import InstanceStore, safe_component

log = logging.getLogger(__name__)


class PermanentJobError(Exception):
    """A fault retrying cannot mend (unknown model or destination, unreadable input)."""


# What a model raises for an image it cannot take (DecodeError and PreprocessError are
# ValueErrors): deterministic, so permanent. Runtime and resource errors stay transient.
DETERMINISTIC = (ValueError, TypeError, IndexError, KeyError, AttributeError)


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces collapsed (for job.error and logs)."""
    return " ".join(text.split())


class JobCancelled(Exception):
    """An admin cancelled the job while it ran."""


@dataclass(frozen=True)
class Output:
    kind: str
    sop_class_uid: str
    sop_instance_uid: str
    path: str


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


class JobRunner:
    """Runs claimed jobs; the executor calls it once per claim."""

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        store: InstanceStore,
        registry: ModelRegistry,
        config: Callable[[], NodeConfig],
    ) -> None:
        self.db = db
        self.queue = queue
        self.store = store
        self.registry = registry
        self.config = config
        self.results_dir = store.root / "results"
        self.attempts = AttemptLog(db)

    # -- entry point ----------------------------------------------------------------
    def __call__(self, claim: Claim) -> None:
        policy = self.config().jobs.retry
        try:
            outputs = self._outputs(claim)
            if outputs is None:
                outputs = self._produce(claim)
            self._check(claim)
            self.queue.mark(claim, state=JobState.DELIVERING)
            self._deliver(claim, outputs, policy)
        except JobCancelled:
            log.info("job %s cancelled; stopped", claim.job_id)
        except PermanentJobError as exc:
            log.debug("job %s: permanent failure", claim.job_id, exc_info=True)
            self.queue.fail(claim, one_line(str(exc)), permanent=True, policy=policy)
            metrics.JOBS_FINISHED.labels("dead").inc()
        except Exception as exc:  # transient unless proven otherwise
            log.exception("job %s attempt %s failed", claim.job_id, claim.attempt)
            state = self.queue.fail(claim, f"{type(exc).__name__}: {exc}", permanent=False,
                                    policy=policy)
            metrics.JOBS_FINISHED.labels(state.value).inc()

    def crashed(self, claim: Claim, exc: Exception) -> None:
        """Executor hook for an exception that escaped ``__call__`` (a bug)."""
        policy = self.config().jobs.retry
        self.queue.fail(claim, f"internal error: {exc!r}", permanent=False, policy=policy)

    # -- stages ---------------------------------------------------------------------
    def _check(self, claim: Claim) -> None:
        if self.queue.is_cancelled(claim.job_id):
            raise JobCancelled

    def _load_job(self, job_id: int) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            s.expunge(job)
            return job

    def _outputs(self, claim: Claim) -> list[Output] | None:
        """Outputs written by an earlier attempt, if they are all still on disk."""
        if not claim.resume_delivery:
            return None
        with self.db.session() as s:
            rows = s.scalars(select(JobOutput).where(JobOutput.job_id == claim.job_id)).all()
            outputs = [Output(r.kind, r.sop_class_uid, r.sop_instance_uid, r.path) for r in rows]
        if outputs and all(Path(o.path).is_file() for o in outputs):
            log.info("job %s: results already written, resuming delivery", claim.job_id)
            return outputs
        return None

    def _inputs(self, job: Job) -> list[Instance]:
        with self.db.session() as s:
            rows = s.scalars(
                select(Instance).where(Instance.sop_instance_uid.in_(job.instance_uids))
            ).all()
            for r in rows:
                s.expunge(r)
        by_uid = {r.sop_instance_uid: r for r in rows}
        missing = [u for u in job.instance_uids if u not in by_uid]
        if missing:
            raise PermanentJobError(
                f"{len(missing)} input instance(s) are no longer stored (e.g. {missing[0]})"
            )
        return [by_uid[u] for u in job.instance_uids]

    def _produce(self, claim: Claim) -> list[Output]:
        job = self._load_job(claim.job_id)
        inputs = self._inputs(job)
        if job.action == "forward":
            outputs = [Output("forward", r.sop_class_uid, r.sop_instance_uid, r.path)
                       for r in inputs]
        else:
            outputs = []
            for name in job.models:
                outputs += self._infer_and_write(claim, job, name, inputs)
        self._record_outputs(claim, outputs)
        return outputs

    def _infer_and_write(self, claim: Claim, job: Job, model_name: str,
                         inputs: Sequence[Instance]) -> list[Output]:
        try:
            model = self.registry.get(model_name)
        except KeyError as exc:
            raise PermanentJobError(
                f"model {model_name!r} is not loaded ({exc}); see `dicom-node models list`"
            ) from exc
        sources: list[Dataset] = []
        skipped: list[str] = []
        for row in inputs:
            try:
                ds = dcmread(row.path)
            except Exception as exc:
                raise PermanentJobError(f"cannot read stored input {row.path}: {exc}") from exc
            ok, reason = model.applies_to(ds)
            if ok:
                sources.append(ds)
            else:
                skipped.append(f"{row.sop_instance_uid}: {reason}")
        if not sources:
            raise PermanentJobError(
                f"no input image fits model {model_name!r}: " + "; ".join(skipped[:3])
            )
        started = time.monotonic()
        results = []
        for ds in sources:
            try:
                results += model.infer(ds)
            except DETERMINISTIC as exc:  # the same image fails the same way every time
                raise PermanentJobError(
                    f"model {model_name!r} cannot process image {ds.get('SOPInstanceUID')} "
                    f"(study {job.study_uid}): {type(exc).__name__}: {exc}"
                ) from exc
        metrics.INFERENCE_SECONDS.labels(model_name).observe(time.monotonic() - started)
        self.queue.mark(claim, inferred_at=utcnow())
        log.info("job %s study %s: %s ran on %d image(s) via %s", claim.job_id, job.study_uid,
                 model_name, len(sources), model.provider)
        self._check(claim)
        # The job's creation time stamps the results: a re-run writes identical objects.
        options = self.config().results.write_options(created_at=job.created_at)
        try:
            objects = sr_writer.write_results(sources, image_results(results), options)
        except sr_writer.ResultWriteError as exc:
            raise PermanentJobError(f"results of model {model_name!r} cannot be written: "
                                    f"{exc}") from exc
        outputs = []
        for kind, ds in objects.kinds():  # SR, heatmaps, card, KOS, parametric maps
            path = (self.results_dir / safe_component(ds.StudyInstanceUID)
                    / safe_component(ds.SeriesInstanceUID)
                    / f"{safe_component(ds.SOPInstanceUID)}.dcm")
            self.store.write(path, [_encode(ds)])
            outputs.append(Output(kind, ds.SOPClassUID, ds.SOPInstanceUID, str(path)))
        self.queue.mark(claim, written_at=utcnow())
        log.info("job %s study %s: wrote %s", claim.job_id, job.study_uid,
                 ", ".join(f"{n} {k}" for k, n in Counter(k for k, _ in objects.kinds()).items()))
        return outputs

    def _record_outputs(self, claim: Claim, outputs: Sequence[Output]) -> None:
        with self.db.session() as s:
            existing = {o.sop_instance_uid: o for o in s.scalars(
                select(JobOutput).where(JobOutput.job_id == claim.job_id))}
            for o in outputs:
                row = existing.get(o.sop_instance_uid)
                if row is None:
                    s.add(JobOutput(job_id=claim.job_id, kind=o.kind, path=o.path,
                                    sop_class_uid=o.sop_class_uid,
                                    sop_instance_uid=o.sop_instance_uid))
                else:
                    row.path, row.kind = o.path, o.kind

    def _deliver(self, claim: Claim, outputs: Sequence[Output], policy: RetryPolicy) -> None:
        job = self._load_job(claim.job_id)
        config = self.config()
        by_name = {d.name: d for d in config.destinations}
        self.attempts.interrupt_unfinished(claim.job_id, job.study_uid)
        accepted = self.attempts.accepted(claim.job_id)
        transient: list[str] = []
        permanent: list[str] = []
        for name in job.destinations:
            # Only what this destination has not accepted yet: nothing is sent twice.
            files = [o.path for o in outputs
                     if o.sop_instance_uid not in accepted.get(name, set())]
            if not files:
                continue
            self._check(claim)
            dest = by_name.get(name)
            if dest is None:
                permanent.append(f"destination {name!r} is not configured")
                continue
            # The attempt is on record before the first file goes, each response as it comes.
            label = f"job {claim.job_id} study {job.study_uid}"
            attempt = self.attempts.start(claim.job_id, name, planned=len(files), label=label)
            report = deliver(dest, files, priority="stat" if job.priority == 0 else "routine",
                             label=label, on_outcomes=attempt.record)
            attempt.finish(report)
            if report.status == "transient":
                transient.append(f"{name}: {report.summary()}")
            elif report.status == "permanent":
                permanent.append(f"{name}: {report.summary()}")
            else:
                log.info("job %s study %s: %d object(s) delivered to %s", claim.job_id,
                         job.study_uid, len(files), name)
        if permanent:
            raise PermanentJobError("; ".join(permanent + transient))
        if transient:
            raise RuntimeError("delivery failed: " + "; ".join(transient))
        self.queue.finish(claim)
        metrics.JOBS_FINISHED.labels("done").inc()
