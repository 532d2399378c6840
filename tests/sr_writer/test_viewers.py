"""Our results through the published viewer code, run by node (tests/viewers/):

* the SR through OHIF's SR extension and the dcmjs/Cornerstone3D adapters
  (ohif_sr.mjs): it loads without throwing and each positive finding is a measurement
  with coordinates on its source image;
* the Parametric Map through the Cornerstone3D adapter and volume order OHIF's pmap
  extension overlays with (ohif_pmap.mjs): each slice gets its own heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from sr_writer import WriteOptions, display, pmap
from tests.support.viewers import Finding, located, run_ohif_pmap, run_ohif_sr, unavailable

from .support import (
    SOURCES,
    WHEN,
    ct_with_distinct_heatmaps,
    result_for,
    save,
    write,
)

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


def _files(sources: list[Dataset], sr: Dataset, folder: Path) -> tuple[Path, list[Path]]:
    return (
        save(sr, folder, "sr"),
        [save(ds, folder, f"source{i}") for i, ds in enumerate(sources)],
    )


def _positives(sources: list[Dataset]) -> list[Finding]:
    """What ``write`` made positive: pneumothorax on every image (0.83, 0.73, 0.63)."""
    return [
        Finding(str(ds.SOPInstanceUID), "Pneumothorax", int(ds.Rows), int(ds.Columns))
        for ds in sources
    ]


@pytest.mark.parametrize("kind", ["cr", "dx-mono1", "ct"])
def test_ohif_locates_each_positive_finding(kind: str, tmp_path: Path) -> None:
    sources = SOURCES[kind]()
    out = write(sources)
    sr, files = _files(sources, out.sr, tmp_path)
    output = run_ohif_sr(sr, files)
    assert output["versions"]["@ohif/extension-cornerstone-dicom-sr"] == "3.13.13"
    found = located(output, _positives(sources))
    drawn = {a["TrackingUniqueIdentifier"]: a for a in output["ohif"]["annotations"]}
    for i, (measurement, ds) in enumerate(zip(found, sources, strict=True)):
        # The text OHIF's DICOMSRDisplayTool draws beside it (its own code).
        text = drawn[measurement["TrackingUniqueIdentifier"]]["textLines"]
        assert text == [f"Certainty of Finding: {0.83 - 0.1 * i:.2f} 1"]
        # The heatmap blob peaks at (0.25 of the width, 0.3 of the height).
        xs, ys = measurement["graphicData"][0::2], measurement["graphicData"][1::2]
        assert min(xs) <= 0.25 * ds.Columns <= max(xs)
        assert min(ys) <= 0.3 * ds.Rows <= max(ys)
        assert max(xs) < 0.6 * ds.Columns and max(ys) < 0.6 * ds.Rows
    # Every label's classification is a measurement too (over the whole image).
    names = [m["TrackingIdentifier"] for m in output["ohif"]["measurements"]]
    for name in ("Pneumothorax", "Pleural effusion", "Cardiomegaly"):
        assert sum(n.startswith(name) for n in names) >= len(sources)
    # dcmjs and the Cornerstone3D adapters parse the report without throwing.
    assert output["dcmjsAdapters"]["error"] is None
    assert output["cornerstone3dAdapters"]["error"] is None


def test_negative_labels_are_not_located(tmp_path: Path) -> None:
    sources = SOURCES["cr"]()
    out = write(sources)
    sr, files = _files(sources, out.sr, tmp_path)
    output = run_ohif_sr(sr, files)
    with pytest.raises(AssertionError, match="no OHIF measurement locates Pleural effusion"):
        located(
            output,
            [
                Finding(
                    str(sources[0].SOPInstanceUID),
                    "Pleural effusion",
                    int(sources[0].Rows),
                    int(sources[0].Columns),
                )
            ],
        )


def _strip_scoords(items) -> None:  # a pydicom Sequence of content items
    """Remove every SCOORD and every TID 1410 group: the SR as it was before."""
    keep = []
    for item in items:
        if item.get("ValueType") == "SCOORD":
            continue
        if (
            "ContentTemplateSequence" in item
            and item.ContentTemplateSequence[0].TemplateIdentifier == "1410"
        ):
            continue
        if "ContentSequence" in item:
            _strip_scoords(item.ContentSequence)
        keep.append(item)
    items.clear()
    items.extend(keep)


def test_check_fails_for_an_sr_without_coordinates(tmp_path: Path) -> None:
    """The check can fail: without SCOORD, OHIF 3.13 throws while loading (issue 13)."""
    sources = SOURCES["cr"]()
    out = write(sources)
    _strip_scoords(out.sr.ContentSequence)
    sr, files = _files(sources, out.sr, tmp_path)
    output = run_ohif_sr(sr, files)
    assert "ReferencedSOPSequence" in (output["ohif"]["error"] or "")
    with pytest.raises(AssertionError, match="OHIF threw"):
        located(output, _positives(sources))


def test_ohif_loads_a_report_without_findings(tmp_path: Path) -> None:
    """Only positives kept and none found: the statement about the whole image loads."""
    sources = SOURCES["cr"]()
    out = write(
        sources,
        WriteOptions(created_at=WHEN, sr_labels="positive"),
        [result_for(sources[0], pneumothorax=0.2)],
    )
    sr, files = _files(sources, out.sr, tmp_path)
    ohif = run_ohif_sr(sr, files)["ohif"]
    assert ohif["error"] is None
    [statement] = ohif["measurements"]
    assert statement["TrackingIdentifier"] == "No finding above threshold"
    assert (
        statement["loaded"] and statement["ReferencedSOPInstanceUID"] == sources[0].SOPInstanceUID
    )


def _overlay_misplaced(output: dict, sources: list[Dataset], results) -> list[str]:
    """Slices of OHIF's volume whose overlay peak is not where that slice's heatmap peaks."""
    assert output["error"] is None, output["error"]
    assert output["pixelDataLength"] == output["volumeLength"]
    expected = {}
    for ds, result in zip(sources, results, strict=True):
        heat = display.upsample_heatmap(result.labels[0].heatmap, (ds.Rows, ds.Columns))
        expected[str(ds.SOPInstanceUID)] = tuple(
            int(v) for v in np.unravel_index(int(heat.argmax()), heat.shape)
        )
    return [
        s["SOPInstanceUID"]
        for s in output["slices"]
        if (s["peakRow"], s["peakColumn"]) != expected[s["SOPInstanceUID"]]
    ]


def test_ohif_pmap_overlay_lands_on_each_slice(tmp_path: Path) -> None:
    sources, results = ct_with_distinct_heatmaps()
    out = write(sources, WriteOptions(created_at=WHEN, parametric_map=True), results)
    [pm] = out.pmaps
    files = [save(ds, tmp_path, f"source{i}") for i, ds in enumerate(sources)]
    output = run_ohif_pmap(save(pm, tmp_path, "pm"), files)
    assert len(output["slices"]) == len(sources)
    assert _overlay_misplaced(output, sources, results) == []


def test_ohif_pmap_check_fails_for_frames_in_highdicom_order(tmp_path: Path, monkeypatch) -> None:
    """The check can fail: without our reordering, OHIF would overlay slices upside down."""
    monkeypatch.setattr(pmap, "_frames_in_order", lambda *args: None)
    sources, results = ct_with_distinct_heatmaps()
    out = write(sources, WriteOptions(created_at=WHEN, parametric_map=True), results)
    files = [save(ds, tmp_path, f"source{i}") for i, ds in enumerate(sources)]
    output = run_ohif_pmap(save(out.pmaps[0], tmp_path, "pm"), files)
    assert len(_overlay_misplaced(output, sources, results)) == 2  # first and last swap
