"""Where each positive finding is (TID 1410 in the SR), the Key Object Selection document
and the Parametric Map: geometry, references, round trips through highdicom and DCMTK."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from ai.preprocess import crop_heatmap, letterbox_geometry
from sr_writer import WriteOptions, display
from sr_writer.spatial import hot_region
from tests.support.dcmtk import dcmtk_tool
from tests.support.dicom3tools import dciodvfy

from .support import (
    MODEL,
    SOURCES,
    UTF8_NOTE,
    WHEN,
    ct_with_distinct_heatmaps,
    needs_dciodvfy,
    needs_dcmtk,
    result_for,
    save,
    write,
)

# --- the hot region's geometry ------------------------------------------------------------


def test_hot_region_scales_heatmap_cells_to_source_pixels() -> None:
    heat = np.zeros((8, 10), np.float32)  # 8 rows x 10 columns of cells
    heat[2:4, 6:9] = 0.6
    heat[3, 7] = 1.0  # peak
    heat[7, 0] = 0.9  # hot but not connected to the peak: not in the region
    region = hot_region(heat, rows=400, cols=300)  # cell = 30 px wide, 50 px high
    assert region is not None
    xs, ys = region.outline[:, 0], region.outline[:, 1]
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (180, 270, 100, 200)
    assert tuple(region.outline[0]) == tuple(region.outline[-1])  # closed
    assert region.peak == (225.0, 175.0)
    assert hot_region(np.zeros((4, 4), np.float32), 10, 10) is None


@pytest.mark.parametrize(
    ("rows", "cols", "policy"),
    [(600, 400, "letterbox"), (300, 500, "letterbox"), (600, 400, "stretch")],
)
def test_hot_region_lands_where_the_model_saw_it(rows: int, cols: int, policy: str) -> None:
    """A spot at source pixel (x, y), put through the model's letterbox and the heatmap
    crop as ai/ does, comes back around (x, y)."""
    size = 224
    box = letterbox_geometry(rows, cols, size, size, policy)
    x, y = 0.7 * cols, 0.25 * rows
    # The CAM the model would give: a blob at the spot's place in the model input.
    iy, ix = np.mgrid[0:size, 0:size].astype(np.float32)
    cy = box.top + y * box.height / rows
    cx = box.left + x * box.width / cols
    cam = np.exp(-((iy - cy) ** 2 + (ix - cx) ** 2) / (2 * 6.0**2)).astype(np.float32)
    coarse = cam.reshape(28, 8, 28, 8).mean(axis=(1, 3))  # a 28 x 28 CAM, as models give
    heat = crop_heatmap(coarse, box, size, size)
    region = hot_region(heat, rows, cols)
    assert region is not None
    px, py = region.peak
    cell = 8 * max(cols / box.width, rows / box.height)  # one CAM cell, in source pixels
    assert abs(px - x) <= cell and abs(py - y) <= cell
    xs, ys = region.outline[:, 0], region.outline[:, 1]
    assert xs.min() <= x <= xs.max() and ys.min() <= y <= ys.max()
    assert xs.max() - xs.min() < cols / 2 and ys.max() - ys.min() < rows / 2


# --- the SR's planar ROI groups -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["cr", "ct"])
def test_each_positive_finding_has_a_planar_roi_group(kind: str, tmp_path: Path) -> None:
    sources = SOURCES[kind]()
    out = write(sources)  # pneumothorax positive (with heatmap), the others negative
    sr = hd.sr.srread(save(out.sr, tmp_path, "sr"))
    planar = sr.content.get_planar_roi_measurement_groups()
    assert len(planar) == len(sources)
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    seen = set()
    for group in planar:
        assert group.finding_type.value == "36118008"  # Pneumothorax, SCT
        region = group.roi
        assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        data = region.value
        assert np.array_equal(data[0], data[-1]) and len(data) >= 4
        uid = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        source = by_uid[uid]
        assert (data[:, 0] >= 0).all() and (data[:, 0] <= source.Columns).all()
        assert (data[:, 1] >= 0).all() and (data[:, 1] <= source.Rows).all()
        [certainty] = group.get_measurements()
        assert certainty.name.value == "111012" and certainty.unit.value == "1"
        [decision] = group.get_qualitative_evaluations()
        assert decision.value.value == "52101004"  # Present
        seen.add(uid)
    assert seen == set(by_uid)
    # Per-label classification stays for every label; tracking UIDs are all distinct.
    assert len(sr.content.get_image_measurement_groups()) == 3 * len(sources)
    groups = [*planar, *sr.content.get_image_measurement_groups()]
    assert len({g.tracking_uid for g in groups}) == len(groups)
    # Everything the content refers to is in the evidence.
    evidence = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert seen <= evidence


def test_negative_findings_are_not_located() -> None:
    sources = SOURCES["cr"]()
    out = write(sources, results=[result_for(sources[0], pneumothorax=0.2)])
    [measurements] = [
        item
        for item in out.sr.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "126010"
    ]
    templates = [
        g.ContentTemplateSequence[0].TemplateIdentifier for g in measurements.ContentSequence
    ]
    assert templates and "1410" not in templates


@needs_dcmtk
@pytest.mark.parametrize("demo", [True, False], ids=["demo", "clinical"])
def test_dcmtk_reads_and_renders_the_located_sr_and_the_kos(demo: bool, tmp_path: Path) -> None:
    sources = SOURCES["cr"]()
    model = dataclasses.replace(MODEL, demo=demo)
    out = write(sources, results=[result_for(sources[0], model)])
    # DCMTK 3.6.7 says "W: Check for template constraints not yet supported" for every
    # KOS that names its (mandatory) template, TID 2010: it has no checker for it; and
    # a demo model's objects are UTF-8 (the notice's em dash), which its VR checker
    # does not check (support.UTF8_NOTE).
    template_note = "W: Check for template constraints not yet supported\n"
    utf8_note = UTF8_NOTE if demo else ""
    assert (out.kos.SpecificCharacterSet == "ISO_IR 192") == demo
    for name, ds, expect, note in (
        ("sr", out.sr, "Pneumothorax region", utf8_note),
        ("kos", out.kos, "Of Interest", utf8_note + template_note),
    ):
        path = save(ds, tmp_path, name)
        dump = subprocess.run(
            [dcmtk_tool("dsrdump"), "+Pt", str(path)], capture_output=True, text=True, timeout=60
        )
        assert dump.returncode == 0 and dump.stderr == note, dump.stderr
        html = subprocess.run(["dsr2html", str(path)], capture_output=True, text=True, timeout=60)
        assert html.returncode == 0 and html.stderr == note, html.stderr
        assert expect in html.stdout


# --- Key Object Selection -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cr", "ct"])
def test_kos_flags_the_images_with_positive_findings(kind: str, tmp_path: Path) -> None:
    sources = SOURCES[kind]()
    # Positive on every other image.
    results = [
        result_for(ds, pneumothorax=0.83 if i % 2 == 0 else 0.2) for i, ds in enumerate(sources)
    ]
    out = write(sources, results=results)
    assert out.kos is not None
    path = save(out.kos, tmp_path, "kos")
    kos = hd.ko.KeyObjectSelectionDocument.from_dataset(pydicom.dcmread(path))
    assert kos.Modality == "KO" and kos.StudyInstanceUID == sources[0].StudyInstanceUID
    assert kos.SeriesInstanceUID not in {out.sr.SeriesInstanceUID, out.card.SeriesInstanceUID}
    title = kos.ContentSequence and kos.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator) == ("113000", "DCM")
    flagged = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for item in kos.content.get_references()
    }
    assert flagged == {str(ds.SOPInstanceUID) for i, ds in enumerate(sources) if i % 2 == 0}
    evidence = {
        item.ReferencedSOPInstanceUID
        for study in kos.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert evidence == flagged
    [description] = [
        item.TextValue
        for item in kos.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "113012"
    ]
    assert description.startswith("NON-CLINICAL DEMO \u2014 untrained weights. ")  # MODEL.demo


def test_no_kos_without_positive_findings_or_when_off() -> None:
    sources = SOURCES["cr"]()
    assert write(sources, results=[result_for(sources[0], pneumothorax=0.2)]).kos is None
    assert write(sources, WriteOptions(created_at=WHEN, kos=False)).kos is None


@needs_dciodvfy
def test_kos_passes_dciodvfy(tmp_path: Path) -> None:
    out = write(SOURCES["dx-mono1"]())
    errors, _ = dciodvfy(save(out.kos, tmp_path, "kos"))
    assert errors == []


# --- Parametric Map -----------------------------------------------------------------------


def test_parametric_map_is_off_by_default_and_needs_a_frame_of_reference() -> None:
    assert write(SOURCES["ct"]()).pmaps == []
    cr = write(SOURCES["cr"](), WriteOptions(created_at=WHEN, parametric_map=True))
    assert cr.pmaps == []  # a radiograph has no Frame of Reference


def test_parametric_map_holds_the_heatmaps_over_its_series(tmp_path: Path) -> None:
    # Different heatmaps per slice, so that a frame in the wrong place shows.
    sources, results = ct_with_distinct_heatmaps()
    out = write(sources, WriteOptions(created_at=WHEN, parametric_map=True), results)
    [pm_ds] = out.pmaps  # pneumothorax: positive, with heatmaps on every slice
    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(save(pm_ds, tmp_path, "pm")))
    assert pm.NumberOfFrames == len(sources)
    assert pm.ContentDescription.startswith("NON-CLINICAL DEMO")  # MODEL.demo
    assert pm.StudyInstanceUID == sources[0].StudyInstanceUID
    assert pm.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert (pm.Rows, pm.Columns) == (sources[0].Rows, sources[0].Columns)
    assert pm.SeriesInstanceUID not in {out.sr.SeriesInstanceUID, out.kos.SeriesInstanceUID}
    [series] = pm.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence} == {
        ds.SOPInstanceUID for ds in sources
    }
    rwvm = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert rwvm.MeasurementUnitsCodeSequence[0].CodeValue == "1"
    by_uid = {str(ds.SOPInstanceUID): (ds, r) for ds, r in zip(sources, results, strict=True)}
    positions = []
    for frame, item in zip(pm.pixel_array, pm.PerFrameFunctionalGroupsSequence, strict=True):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source, result = by_uid[uid]
        assert item.PlanePositionSequence[0].ImagePositionPatient == source.ImagePositionPatient
        expected = display.upsample_heatmap(result.labels[0].heatmap, (source.Rows, source.Columns))
        assert float(rwvm.RealWorldValueSlope) == 1.0 and pm.BitsAllocated == 32
        assert np.abs(frame - expected).max() <= 1e-6
        positions.append(float(source.ImagePositionPatient[2]))  # axial: normal is +z
    assert positions == sorted(positions)  # Cornerstone's volume order, lowest first
