"""Checks of the sources and of the result set, before any object is built.

Each result checked itself when it was constructed (:mod:`sr_writer.inputs`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset

from sr_writer.errors import ResultWriteError
from sr_writer.inputs import ImageResult

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
    """Check that the sources can carry results into one patient's study.

    Parameters
    ----------
    sources : Sequence[pydicom.dataset.Dataset]
        The analysed source datasets.

    Returns
    -------
    dict of str to pydicom.dataset.Dataset
        The sources by SOP Instance UID.

    Raises
    ------
    ResultWriteError
        No sources, a source without its patient/study attributes, or sources of more
        than one study or patient.
    """
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


def check_results(results: Sequence[ImageResult], sources: dict[str, Dataset]) -> None:
    """Check the results against each other and the sources they claim to describe.

    Each result has checked itself when it was built (see :mod:`sr_writer.inputs`);
    what is left needs the whole set.

    Parameters
    ----------
    results : Sequence[ImageResult]
        One model's results.
    sources : dict of str to pydicom.dataset.Dataset
        The sources by SOP Instance UID, as :func:`check_sources` returns them.

    Raises
    ------
    ResultWriteError
        No results, a result for an unknown source or frame, a frame given twice, or
        results of more than one model.
    """
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
        if result.frame is not None and result.frame > frames:
            raise ResultWriteError(f"{where}: frame {result.frame} not in 1..{frames}")
