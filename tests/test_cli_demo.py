"""`dicom-node demo-study` writes studies that pass dciodvfy and that the demo model takes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

from dicom_node.cli import app


@pytest.mark.parametrize(
    ("kind", "count", "modality"), [("cr", 1, "CR"), ("dx", 1, "DX"), ("ct", 3, "CT")]
)
def test_demo_study(tmp_path: Path, kind: str, count: int, modality: str) -> None:
    r = CliRunner().invoke(
        app, ["demo-study", str(tmp_path), "--kind", kind, "--images", str(count)]
    )
    assert r.exit_code == 0, r.output
    files = sorted(tmp_path.glob("*.dcm"))
    assert len(files) == count
    assert {dcmread(f, stop_before_pixels=True).Modality for f in files} == {modality}
    out = subprocess.run(["dciodvfy", str(files[0])], capture_output=True, text=True)
    assert not [x for x in (out.stdout + out.stderr).splitlines() if x.startswith("Error")]
