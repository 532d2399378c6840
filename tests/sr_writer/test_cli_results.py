"""`dicom-node results render` shows an SR as a readable tree, and names bad files."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dicom_node.cli import app

from .support import MODEL, SOURCES, save, write


def test_render_sr_and_sc(tmp_path: Path) -> None:
    out = write(SOURCES["cr"]())
    sr = save(out.sr, tmp_path, "sr")
    sc = save(out.heatmaps[0], tmp_path, "heatmap")
    result = CliRunner().invoke(
        app, ["results", "render", str(sr), str(sc)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in (
        "Comprehensive 3D SR",
        "Imaging Measurement Report",
        "Pneumothorax (36118008, SCT)",
        "Certainty of Finding NUM: 0.83 [1]",
        "Present (52101004, SCT)",
        "Absent (272519000, SCT)",
        "threshold=0.5",
        MODEL.device_uid,
        "Processing Algorithm (Newcode1, 99IHE)",
        "CurrentRequestedProcedureEvidenceSequence",
        str(SOURCES["cr"]()[0].SOPInstanceUID),
        "Secondary Capture Image Storage",
        "BurnedInAnnotation: YES",
        "Source image for image processing operation (121322, DCM)",
    ):
        assert expected in text, expected


def test_render_kos(tmp_path: Path) -> None:
    sources = SOURCES["cr"]()
    kos = save(write(sources).kos, tmp_path, "kos")
    result = CliRunner().invoke(app, ["results", "render", str(kos)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for expected in (
        "Key Object Selection",
        "Of Interest (113000, DCM)",
        "positive: Pneumothorax (0.83)",
        f"Source IMAGE: {sources[0].SOPInstanceUID}",
    ):
        assert expected in result.output, expected


def test_render_names_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "not-dicom.dcm"
    bad.write_text("hello")
    result = CliRunner().invoke(app, ["results", "render", str(bad)])
    assert result.exit_code == 2
    assert "not-dicom.dcm" in result.output
