"""The infer stage: a job's stored inputs through one model.

Reads the job's instances from the store, keeps those the model applies to and runs the
model on each. Errors are typed at this boundary (:mod:`dicom_node.jobs.errors`): a
missing or unreadable input, an unknown model, no fitting image, or an image the model
rejects are permanent (so is a Deflated input that inflates past its image attributes:
it is never inflated whole); an I/O error reading an input and a runtime or resource
error of the model are transient.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian
from sqlalchemy import select

from ai.model import Model
from ai.registry import ModelRegistry
from ai.types import ImageResult
from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.index.tables import Instance
from dicom_node.jobs.errors import DETERMINISTIC, PermanentJobError, TransientJobError
from dicom_node.jobs.inputs import JobInputs, SharedFilesystem
from dicom_node.jobs.models import Job
from dicom_node.jobs.stage_metrics import observe_scores
from dicom_node.store.inflate import InflatesTooFar, read_deflated

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inference:
    """What one model made of a job's inputs."""

    name: str  # as routes and the registry name it
    model: Model
    sources: list[Dataset]  # the inputs the model applies to, in job order
    results: list[ImageResult]


def load_inputs(db: Database, job: Job) -> list[Instance]:
    """The index rows of the job's instances, in job order; permanent if any is gone."""
    with db.session() as s:
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


def fetch_input(inputs: JobInputs, row: Instance) -> Path:
    """The local file of one input (a worker may fetch it from the node first); a failed
    fetch is transient."""
    try:
        return inputs.local_path(row)
    except Exception as exc:  # the node unreachable, a WADO-RS error: it may work later
        raise TransientJobError(
            f"cannot fetch input {row.sop_instance_uid}: {type(exc).__name__}: {exc}"
        ) from exc


def read_input(path: Path | str, row: Instance, job: Job) -> Dataset:
    """One stored input: gone or unparsable is permanent, another I/O error transient. A
    Deflated one is inflated in steps (:func:`~dicom_node.store.inflate.read_deflated`),
    never whole by pydicom: one that inflates past its image attributes is permanent."""
    try:
        if read_file_meta_info(path).get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            return read_deflated(path)
        return dcmread(path)
    except InflatesTooFar as exc:
        raise PermanentJobError(
            f"input {row.sop_instance_uid} of study {job.study_uid} is not read: {exc}"
        ) from exc
    except FileNotFoundError as exc:
        raise PermanentJobError(f"cannot read stored input {path}: {exc}") from exc
    except OSError as exc:  # EIO, a stale mount...: the file may read next time
        raise TransientJobError(f"cannot read stored input {path}: {exc}") from exc
    except Exception as exc:  # pydicom may raise anything on a bad file
        raise PermanentJobError(f"cannot read stored input {path}: {exc}") from exc


def run_model(
    registry: ModelRegistry,
    model_name: str,
    job: Job,
    inputs: Sequence[Instance],
    files: JobInputs | None = None,
) -> Inference:
    """Run ``model_name`` on the inputs it applies to (their files from ``files``, by
    default where the node indexed them)."""
    files = files or SharedFilesystem()
    try:
        model = registry.get(model_name)
    except KeyError as exc:
        raise PermanentJobError(
            f"model {model_name!r} is not loaded ({exc}); see `dicom-node models list`"
        ) from exc
    sources: list[Dataset] = []
    skipped: list[str] = []
    for row in inputs:
        ds = read_input(fetch_input(files, row), row, job)
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
    results: list[ImageResult] = []
    for ds in sources:
        try:
            results += model.infer(ds)
        except DETERMINISTIC as exc:  # the same image fails the same way every time
            raise PermanentJobError(
                f"model {model_name!r} cannot process image {ds.get('SOPInstanceUID')} "
                f"(study {job.study_uid}): {type(exc).__name__}: {exc}"
            ) from exc
        except Exception as exc:  # runtime and resource errors of any backend
            raise TransientJobError(
                f"model {model_name!r} failed on image {ds.get('SOPInstanceUID')}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    metrics.INFERENCE_SECONDS.labels(model_name).observe(time.monotonic() - started)
    observe_scores(model_name, results)
    return Inference(model_name, model, sources, results)
