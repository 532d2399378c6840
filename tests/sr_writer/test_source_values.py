"""sanitize(): values invalid in a result are fixed, emptied or left out; carried ones stay."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from sr_writer.source_values import library_view, sanitize, valid_orientation


def _header(**values: object) -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID = "05fa52f0e5"  # not a UID, carried anyway
    ds.PatientID = "x" * 80  # too long for LO, carried anyway
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("age", "fixed"), [("22Y ", "022Y"), ("5M", "005M"), ("045Y", "045Y"), (" 3 D", "003D")]
)
def test_patient_age_is_fixed(age: str, fixed: str) -> None:
    ds = _header(PatientAge=age)
    sanitize(ds)
    assert ds.PatientAge == fixed


def test_invalid_values_emptied_or_left_out_carried_ones_kept() -> None:
    ds = _header(
        PatientAge="old",
        StudyID="d" * 64,
        StudyDate="1994.11.05",
        PatientSex="X",
        PixelSpacing=[0, 0],
        ImagerPixelSpacing=[0.1, 0.1],
        Laterality="B",
        PatientOrientation=["L", "R"],
        PatientWeight=0,
        SliceThickness="2.5",
    )
    notes = sanitize(ds)
    assert "PatientAge" not in ds and "PixelSpacing" not in ds and "Laterality" not in ds
    assert "PatientOrientation" not in ds and "PatientWeight" not in ds
    assert ds.StudyID == "" and ds.StudyDate == "" and ds.PatientSex == ""  # type 2
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.1, 0.1]
    assert float(ds.SliceThickness) == 2.5
    assert ds.StudyInstanceUID == "05fa52f0e5" and ds.PatientID == "x" * 80
    assert len(notes) == 8


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (["L", "F"], True),
        (["PL", "F"], True),
        (["LPH", "FR"], True),
        (["L", "R"], False),
        (["LR", "F"], False),
        (["X", "F"], False),
        (["L"], False),
        ("", False),
        (["LPHA", "F"], False),
    ],
)
def test_orientation_pairs(value: object, ok: bool) -> None:
    assert (valid_orientation(value) is not None) is ok


def test_the_callers_source_is_not_modified() -> None:
    from sr_writer.common import header

    source = _header(
        PatientAge="22Y ",
        StudyID="d" * 64,
        Modality="CR",
        SOPInstanceUID="1.2.3",
        PatientName="A^B",
    )
    h = header(source)
    assert h.PatientAge == "022Y" and h.StudyID == ""
    assert source.PatientAge == "22Y " and source.StudyID == "d" * 64


def test_library_view_only_changes_sources_without_geometry() -> None:
    full = _header(Modality="CR", PatientOrientation=["L", "F"], ImagerPixelSpacing=[0.1, 0.1])
    assert library_view(full) is full
    bare = _header(Modality="CR", PatientOrientation=["L", "F"])
    view = library_view(bare)
    assert view.Modality == "OT" and bare.Modality == "CR"
