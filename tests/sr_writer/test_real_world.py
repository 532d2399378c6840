"""Real-world sources (pydicom's test files, ``pydicom-data``) the writers once broke on.

The results here are the writer's typed inputs (fixed probabilities, blob heatmaps);
``test_corpus.py`` runs the real model over the whole corpus.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from sr_writer import ImageResult, ResultWriteError, WriteOptions
from sr_writer.common import header
from tests.support.dicom3tools import HAVE_DCIODVFY, dciodvfy

from .support import MODEL, WHEN, labels, save, write

needs_dciodvfy = pytest.mark.skipif(not HAVE_DCIODVFY, reason="dciodvfy not installed")
ALL = WriteOptions(created_at=WHEN, heatmaps="positive")
# dciodvfy's advice on an empty (unknown) Laterality; the attribute is type 2C and the
# value is unknown, which is what empty means.
LATERALITY_UNKNOWN = "only permitted to be empty when actually unknown"


def source(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, f"{name} not found: is pydicom-data installed?"
    return dcmread(path)


def results_for(ds: Dataset, **probs: float) -> list[ImageResult]:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    numbers = [None] if frames == 1 else list(range(1, frames + 1))
    return [ImageResult(str(ds.SOPInstanceUID), f, MODEL, labels(**probs)) for f in numbers]


def errors_of(objects: list[Dataset], folder: Path) -> list[str]:
    out = []
    for i, ds in enumerate(objects):
        errors, _ = dciodvfy(save(ds, folder, f"obj{i}"))
        out += [f"{i}: {e}" for e in errors]
    return out


@needs_dciodvfy
@pytest.mark.parametrize("name", ["RG1_UNCI.dcm", "RG1_UNCR.dcm"])
def test_zero_pixel_spacing_is_not_copied(name: str, tmp_path: Path) -> None:
    ds = source(name)
    assert [float(v) for v in ds.PixelSpacing] == [0.0, 0.0]
    out = write([ds], ALL, results_for(ds))
    assert out.heatmaps
    for sc in out.heatmaps:
        assert "PixelSpacing" not in sc
    assert errors_of(out.all(), tmp_path) == []


def test_small_source_without_window_or_rescale_renders() -> None:
    ds = source("MR_small.dcm")
    for keyword in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            del ds[keyword]
    out = write([ds], ALL, results_for(ds))
    assert out.heatmaps and out.heatmaps[0].pixel_array.std() > 10


@needs_dciodvfy
def test_modality_lut_sequence_source(tmp_path: Path) -> None:
    ds = source("mlut_18.dcm")
    assert "ModalityLUTSequence" in ds
    out = write([ds], ALL, results_for(ds, pneumothorax=0.9))
    assert out.heatmaps
    assert errors_of(out.all(), tmp_path) == []


@needs_dciodvfy
@pytest.mark.parametrize("name", ["J2K_pixelrep_mismatch.dcm", "MR2_UNCI.dcm"])
def test_oblique_image_orientation(name: str, tmp_path: Path) -> None:
    ds = source(name)
    out = write([ds], ALL, results_for(ds, pneumothorax=0.9))
    row, col = (str(v) for v in out.heatmaps[0].PatientOrientation)
    assert 1 <= len(row) <= 3 and 1 <= len(col) <= 3 and len(row + col) > 2  # oblique
    assert errors_of(out.all(), tmp_path) == []


@needs_dciodvfy
def test_laterality_written_when_body_part_is_not_unpaired(tmp_path: Path) -> None:
    ds = source("JPEG-LL.dcm")  # NM, BodyPartExamined "WHOLE BODY", no Laterality
    out = write([ds], ALL, results_for(ds))
    for sc in [*out.heatmaps, out.card]:
        assert "Laterality" in sc and not sc.Laterality
    assert errors_of(out.all(), tmp_path) == []


@needs_dciodvfy
def test_invalid_source_values_are_fixed_or_dropped(tmp_path: Path) -> None:
    ds = source("bad_sequence.dcm")
    out = write([ds], ALL, results_for(ds))
    for obj in out.all():
        assert obj.StudyInstanceUID == ds.StudyInstanceUID  # carried even though invalid
        assert obj.PatientID == ds.PatientID
        assert obj.PatientAge == "022Y"  # "22Y " fixed
        assert obj.StudyID == ""  # 64 characters for an SH: emptied (type 2)
    # Every remaining error names one of the source's own invalid UIDs.
    carried = {str(ds.StudyInstanceUID), str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)}
    for line in errors_of(out.all(), tmp_path):
        assert any(uid in line for uid in carried) or "invalid data values" in line, line


def test_sanitised_header_keeps_valid_values() -> None:
    ds = source("CT_small.dcm")
    h = header(ds)
    for keyword in (
        "PatientName",
        "PatientID",
        "StudyDate",
        "PixelSpacing",
        "ImageOrientationPatient",
        "SliceThickness",
    ):
        assert h[keyword].value == ds[keyword].value


@needs_dciodvfy
def test_radiograph_without_imager_pixel_spacing_keeps_image_library(tmp_path: Path) -> None:
    ds = source("RG1_UNCI.dcm")  # CR with Patient Orientation, no Imager Pixel Spacing
    assert "ImagerPixelSpacing" not in ds
    out = write([ds], WriteOptions(created_at=WHEN, heatmaps="none"), results_for(ds))
    titles = [
        item.ConceptNameCodeSequence[0].CodeValue
        for item in out.sr.ContentSequence
        if "ConceptNameCodeSequence" in item
    ]
    assert "111028" in titles  # Image Library
    assert errors_of([out.sr], tmp_path) == []


@needs_dciodvfy
@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb.dcm",
        "SC_ybr_full_uncompressed.dcm",
        "US1_J2KR.dcm",
        "SC_rgb_16bit.dcm",
        "OBXXXX1A.dcm",
        "gdcm-US-ALOKA-16.dcm",
    ],
)
def test_colour_and_palette_sources_are_rendered_in_colour(name: str, tmp_path: Path) -> None:
    ds = source(name)
    # An all-zero heatmap is fully transparent: the image area shows the source only.
    flat = tuple(
        dataclasses.replace(label, heatmap=np.zeros((7, 7), np.float32))
        for label in labels(pneumothorax=0.9)
    )
    results = [dataclasses.replace(r, labels=flat) for r in results_for(ds)]
    out = write([ds], ALL, results)
    assert out.heatmaps
    sc = out.heatmaps[0]
    rows = round(512 * int(ds.Rows) / max(int(ds.Rows), int(ds.Columns)))
    image = sc.pixel_array[: rows - 2].astype(np.int16)
    spread = np.abs(image[..., 0] - image[..., 1]) + np.abs(image[..., 1] - image[..., 2])
    assert spread.mean() > 1, "the source's colour is lost"  # grey gives exactly 0
    assert errors_of(out.all(), tmp_path) == []


def test_unexpected_error_inside_a_writer_is_a_result_write_error(monkeypatch) -> None:
    from sr_writer import display

    def broken(*args: object, **kwargs: object) -> None:
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(display, "blend", broken)
    ds = source("CT_small.dcm")
    with pytest.raises(ResultWriteError, match="index 7 is out of bounds"):
        write([ds], ALL, results_for(ds, pneumothorax=0.9))
