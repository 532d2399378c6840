"""Bad inputs raise ResultWriteError naming the problem; nothing is returned.

A result broken on its own cannot even be built (tests/sr_writer/test_inputs.py); here are
the sources, and the results checked against the sources and each other.
"""

from __future__ import annotations

import dataclasses

import pytest

from dicom_node.synthetic import make_cr
from sr_writer import ImageResult, ResultWriteError, WriteOptions, write_results

from .support import MODEL, WHEN, labels, result_for

OPTIONS = WriteOptions(created_at=WHEN)


@pytest.mark.parametrize(
    "keyword", ["PatientID", "PatientName", "StudyInstanceUID", "SOPInstanceUID", "Modality"]
)
def test_source_missing_patient_or_study_attribute(keyword: str) -> None:
    ds = make_cr(rows=64, cols=64)
    results = [result_for(ds)]
    del ds[keyword]
    with pytest.raises(ResultWriteError, match=keyword):
        write_results([ds], results, OPTIONS)


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


def test_frame_past_the_sources_last() -> None:
    ds = make_cr(rows=64, cols=64)
    with pytest.raises(ResultWriteError, match=r"frame 2 not in 1\.\.1"):
        write_results([ds], [ImageResult(str(ds.SOPInstanceUID), 2, MODEL, labels())], OPTIONS)


def test_frame_given_twice() -> None:
    ds = make_cr(rows=64, cols=64)
    with pytest.raises(ResultWriteError, match="given twice"):
        write_results([ds], [result_for(ds), result_for(ds)], OPTIONS)


def test_results_of_two_models() -> None:
    a, b = make_cr(rows=64, cols=64), make_cr(rows=64, cols=64)
    b.StudyInstanceUID, b.PatientID = a.StudyInstanceUID, a.PatientID
    other = dataclasses.replace(MODEL, version="2.0.0")
    with pytest.raises(ResultWriteError, match="write one model's results at a time"):
        write_results([a, b], [result_for(a), result_for(b, other)], OPTIONS)
