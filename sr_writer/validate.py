"""Input checks: every problem is found before any object is built."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from sr_writer.errors import ResultWriteError
from sr_writer.inputs import ImageResult, LabelResult

# Attributes a source must carry for its results to be placed in its patient and study:
# type 1 (present with a value) and type 2 (present, possibly empty, as in the source).
REQUIRED_SOURCE = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
)
REQUIRED_PRESENT = ("PatientID", "PatientName")


def _where(ds: Dataset) -> str:
    return f"source {getattr(ds, 'SOPInstanceUID', '<no SOPInstanceUID>')}"


def check_sources(sources: Sequence[Dataset]) -> dict[str, Dataset]:
    """Check the source datasets; return them by SOP Instance UID."""
    if not sources:
        raise ResultWriteError("no source datasets given")
    by_uid: dict[str, Dataset] = {}
    for ds in sources:
        missing = [k for k in REQUIRED_SOURCE if k not in ds or ds[k].value in (None, "")]
        missing += [k for k in REQUIRED_PRESENT if k not in ds]
        if missing:
            raise ResultWriteError(
                f"{_where(ds)} lacks patient/study attribute(s): {', '.join(missing)}"
            )
        by_uid[str(ds.SOPInstanceUID)] = ds
    studies = {str(ds.StudyInstanceUID) for ds in sources}
    if len(studies) != 1:
        raise ResultWriteError(
            f"sources belong to {len(studies)} studies ({', '.join(sorted(studies))}); "
            "results are written into one study"
        )
    patients = {str(ds.PatientID or "") for ds in sources}
    if len(patients) != 1:
        raise ResultWriteError(f"sources belong to several patients: {sorted(patients)}")
    return by_uid


def _check_label(where: str, label: LabelResult) -> None:
    name = label.name or "<unnamed>"
    if not label.name:
        raise ResultWriteError(f"{where}: a label has no name")
    if label.code is None:
        raise ResultWriteError(f"{where}: label {name!r} has no code (finding type)")
    if not (label.code.value and label.code.scheme and label.code.meaning):
        raise ResultWriteError(f"{where}: label {name!r} has an incomplete code {label.code}")
    for field in ("probability", "threshold"):
        value = getattr(label, field)
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
            raise ResultWriteError(f"{where}: label {name!r} {field} {value!r} not in [0, 1]")
    if label.heatmap is not None:
        hm = np.asarray(label.heatmap)
        if hm.ndim != 2 or min(hm.shape) < 1:
            raise ResultWriteError(
                f"{where}: label {name!r} heatmap has shape {hm.shape}; expected 2-D (rows, cols)"
            )
        if not np.issubdtype(hm.dtype, np.floating) and not np.issubdtype(hm.dtype, np.integer):
            raise ResultWriteError(f"{where}: label {name!r} heatmap dtype {hm.dtype} not numeric")
        if not np.all(np.isfinite(hm)):
            raise ResultWriteError(f"{where}: label {name!r} heatmap contains NaN or infinity")
        if float(hm.min()) < 0 or float(hm.max()) > 1:
            raise ResultWriteError(
                f"{where}: label {name!r} heatmap values [{float(hm.min())}, "
                f"{float(hm.max())}] outside [0, 1]"
            )


def check_results(results: Sequence[ImageResult], sources: dict[str, Dataset]) -> None:
    """Check the inference results against the sources they claim to describe."""
    if not results:
        raise ResultWriteError("no inference results given")
    model = results[0].model
    seen: set[tuple[str, int | None]] = set()
    for result in results:
        where = f"result for {result.sop_instance_uid}"
        if result.sop_instance_uid not in sources:
            raise ResultWriteError(f"{where}: no source dataset with that SOP Instance UID")
        if result.model != model:
            raise ResultWriteError(
                f"{where}: model {result.model.name} {result.model.version} differs from "
                f"{model.name} {model.version}; write one model's results at a time"
            )
        key = (result.sop_instance_uid, result.frame)
        if key in seen:
            raise ResultWriteError(f"{where}: frame {result.frame} given twice")
        seen.add(key)
        frames = int(getattr(sources[result.sop_instance_uid], "NumberOfFrames", 1) or 1)
        if result.frame is not None and not 1 <= result.frame <= frames:
            raise ResultWriteError(f"{where}: frame {result.frame} not in 1..{frames}")
        if not result.labels:
            raise ResultWriteError(f"{where}: no labels")
        names = [label.name for label in result.labels]
        if len(set(names)) != len(names):
            raise ResultWriteError(f"{where}: duplicate label names {names}")
        for label in result.labels:
            _check_label(where, label)
    for field in ("name", "version", "manufacturer", "device_uid"):
        if not getattr(model, field):
            raise ResultWriteError(f"model identity has no {field}")
