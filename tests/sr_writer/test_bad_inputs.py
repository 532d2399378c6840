"""Bad inputs raise ResultWriteError naming the problem; nothing is returned."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dicom_node.synthetic import make_cr
from sr_writer import ImageResult, ResultWriteError, WriteOptions, write_results

from .support import MODEL, WHEN, blob, labels, result_for

OPTIONS = WriteOptions(created_at=WHEN)


def _with_label(ds, **changes) -> list[ImageResult]:
    first = dataclasses.replace(labels()[0], **changes)
    return [ImageResult(str(ds.SOPInstanceUID), None, MODEL, (first, *labels()[1:]))]


@pytest.mark.parametrize(
    "keyword", ["PatientID", "PatientName", "StudyInstanceUID", "SOPInstanceUID", "Modality"]
)
def test_source_missing_patient_or_study_attribute(keyword: str) -> None:
    ds = make_cr(rows=64, cols=64)
    results = [result_for(ds)]
    del ds[keyword]
    with pytest.raises(ResultWriteError, match=keyword):
        write_results([ds], results, OPTIONS)


def test_label_without_code() -> None:
    ds = make_cr(rows=64, cols=64)
    with pytest.raises(ResultWriteError, match="'pneumothorax' has no code"):
        write_results([ds], _with_label(ds, code=None), OPTIONS)


@pytest.mark.parametrize(
    ("heatmap", "message"),
    [
        (np.zeros((7, 7, 3), np.float32), r"shape \(7, 7, 3\)"),
        (np.zeros(49, np.float32), r"shape \(49,\)"),
        (np.full((7, 7), np.nan, np.float32), "NaN"),
        (blob() * 2.0, r"outside \[0, 1\]"),
        (blob() - 0.5, r"outside \[0, 1\]"),
    ],
)
def test_bad_heatmap(heatmap: np.ndarray, message: str) -> None:
    ds = make_cr(rows=64, cols=64)
    with pytest.raises(ResultWriteError, match=message):
        write_results([ds], _with_label(ds, heatmap=heatmap), OPTIONS)


@pytest.mark.parametrize("probability", [float("nan"), -0.1, 1.5])
def test_bad_probability(probability: float) -> None:
    ds = make_cr(rows=64, cols=64)
    with pytest.raises(ResultWriteError, match="probability"):
        write_results([ds], _with_label(ds, probability=probability), OPTIONS)


def test_result_for_unknown_source() -> None:
    ds = make_cr(rows=64, cols=64)
    other = make_cr(rows=64, cols=64, seed=9)
    with pytest.raises(ResultWriteError, match=str(other.SOPInstanceUID)):
        write_results([ds], [result_for(other)], OPTIONS)


def test_sources_from_two_studies() -> None:
    a, b = make_cr(rows=64, cols=64), make_cr(rows=64, cols=64, seed=7)
    with pytest.raises(ResultWriteError, match="2 studies"):
        write_results([a, b], [result_for(a), result_for(b)], OPTIONS)


def test_heatmap_source_without_pixels() -> None:
    ds = make_cr(rows=64, cols=64)
    results = [result_for(ds)]
    del ds.PixelData
    with pytest.raises(ResultWriteError, match="no pixel data"):
        write_results([ds], results, OPTIONS)
    # Without heatmaps or card a pixel-free header is enough.
    out = write_results([ds], results, WriteOptions(created_at=WHEN, heatmaps="none"))
    assert out.heatmaps == [] and out.card is not None


def test_empty_inputs() -> None:
    with pytest.raises(ResultWriteError, match="no source"):
        write_results([], [], OPTIONS)
    ds = make_cr(rows=64, cols=64)
    with pytest.raises(ResultWriteError, match="no inference results"):
        write_results([ds], [], OPTIONS)


def test_empty_type2_patient_attributes_are_carried_not_refused() -> None:
    """Patient Name/ID are type 2: empty in the source is legal and stays empty."""
    ds = make_cr(rows=64, cols=64)
    ds.PatientName = ""
    ds.PatientID = ""
    del ds.PatientBirthDate  # absent type 2 attributes are written empty
    out = write_results([ds], [result_for(ds)], OPTIONS)
    for obj in out.all():
        assert obj.PatientName == "" and obj.PatientID == ""
        assert "PatientBirthDate" in obj and not obj.PatientBirthDate
