"""The write stage: a model's results as DICOM objects in the store, and the record of
every output a job has (results, or the inputs themselves for a forward).

Result UIDs are deterministic and the job's creation time stamps the objects, so a
re-run writes identical files in the same places. Results that cannot be written are
permanent failures; a failing disk is transient.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from sqlalchemy import select

import sr_writer
from dicom_node.db import Database
from dicom_node.jobs.convert import image_results
from dicom_node.jobs.errors import PermanentJobError, TransientJobError
from dicom_node.jobs.infer import Inference
from dicom_node.jobs.models import Job, JobOutput
from dicom_node.store.writer import InstanceStore, safe_component

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """One file a job delivers."""

    kind: str  # "sr", "heatmap", ... or "forward"
    sop_class_uid: str
    sop_instance_uid: str
    path: str


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def write_results(
    store: InstanceStore, job: Job, inference: Inference, options: sr_writer.WriteOptions
) -> list[Output]:
    """Build the result objects of one model's inference and store them under
    ``results/<study>/<series>/<sop>.dcm``."""
    name = inference.name
    try:
        results = image_results(inference.results)  # the value objects check themselves
    except (ValueError, TypeError) as exc:  # a model's output the writer cannot take
        raise PermanentJobError(f"results of model {name!r} cannot be written: {exc}") from exc
    try:
        objects = sr_writer.write_results(inference.sources, results, options)
    except sr_writer.ResultWriteError as exc:
        raise PermanentJobError(f"results of model {name!r} cannot be written: {exc}") from exc
    except (MemoryError, OSError) as exc:  # a resource problem that may pass
        raise TransientJobError(
            f"results of model {name!r} not written now: {type(exc).__name__}: {exc}"
        ) from exc
    results_dir = store.root / "results"
    outputs = []
    for kind, ds in objects.kinds():  # SR, heatmaps, card, KOS, parametric maps
        path = (
            results_dir
            / safe_component(ds.StudyInstanceUID)
            / safe_component(ds.SeriesInstanceUID)
            / f"{safe_component(ds.SOPInstanceUID)}.dcm"
        )
        try:
            store.write(path, [_encode(ds)])
        except OSError as exc:  # StoreError included: disk full, reserve reached
            raise TransientJobError(f"cannot store result {path.name}: {exc}") from exc
        outputs.append(Output(kind, ds.SOPClassUID, ds.SOPInstanceUID, str(path)))
    log.info(
        "job %s study %s: wrote %s",
        job.id,
        job.study_uid,
        ", ".join(f"{n} {k}" for k, n in Counter(k for k, _ in objects.kinds()).items()),
    )
    return outputs


def written_outputs(db: Database, job_id: int) -> list[Output] | None:
    """Outputs an earlier attempt recorded, if they are all still on disk."""
    with db.session() as s:
        rows = s.scalars(select(JobOutput).where(JobOutput.job_id == job_id)).all()
        outputs = [Output(r.kind, r.sop_class_uid, r.sop_instance_uid, r.path) for r in rows]
    if outputs and all(Path(o.path).is_file() for o in outputs):
        return outputs
    return None


def record_outputs(db: Database, job_id: int, outputs: Sequence[Output]) -> None:
    """Put ``outputs`` on the job's record (a re-run updates rows of the same UIDs)."""
    with db.session() as s:
        existing = {
            o.sop_instance_uid: o
            for o in s.scalars(select(JobOutput).where(JobOutput.job_id == job_id))
        }
        for o in outputs:
            row = existing.get(o.sop_instance_uid)
            if row is None:
                s.add(
                    JobOutput(
                        job_id=job_id,
                        kind=o.kind,
                        path=o.path,
                        sop_class_uid=o.sop_class_uid,
                        sop_instance_uid=o.sop_instance_uid,
                    )
                )
            else:
                row.path, row.kind = o.path, o.kind
