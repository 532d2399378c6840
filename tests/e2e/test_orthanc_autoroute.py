"""Proof against a real PACS: Orthanc auto-routes a CR chest study to the node, and the SR
and heatmap series come back into the same study in Orthanc."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pytest
from pydicom import dcmread

from dicom_node import synthetic
from tests.support.node_process import NodeProcess
from tests.support.orthanc import Orthanc
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer

ROOT = Path(__file__).resolve().parents[2]


def sr_probabilities(sr_bytes: bytes) -> dict[str, float]:
    """Finding Type code value -> probability (0..1), read back with highdicom."""
    sr = hd.sr.srread(io.BytesIO(sr_bytes))
    out: dict[str, float] = {}
    for group in sr.content.get_image_measurement_groups():
        (measurement,) = group.get_measurements()
        scale = 0.01 if measurement.unit.value == "%" else 1.0
        out[group.finding_type.value] = float(measurement.value) * scale
    return out


def has_positive(sr_bytes: bytes) -> bool:
    """Whether any finding in the SR is located (a TID 1410 group: positive findings)."""
    sr = hd.sr.srread(io.BytesIO(sr_bytes))
    return bool(sr.content.get_planar_roi_measurement_groups())


def models_test_probabilities(data_dir: Path, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dicom_node",
            "models",
            "test",
            "demo-cxr-densenet121",
            str(path),
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    labels = json.loads(out.stdout)["labels"]
    return {lab["code"]["value"]: lab["probability"] for lab in labels}


def test_orthanc_routes_a_study_and_receives_sr_and_heatmaps(tmp_path: Path) -> None:
    source = synthetic.write_files([synthetic.make_cr(seed=21)], tmp_path / "study")
    src = dcmread(source[0], stop_before_pixels=True)
    node = NodeProcess(
        tmp_path / "node",
        config={
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
            "results": {"heatmaps": "top"},
        },
    )  # one heatmap SC
    orthanc = Orthanc(
        tmp_path / "orthanc",
        aet="ORTHANC",
        modalities={"ainode": ("DICOM_NODE", "127.0.0.1", node.port)},
    )
    with orthanc:
        node.extra_args = ["--destination", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"]
        with node:
            orthanc.upload(source[0])
            [study_id] = orthanc.find("Study", {"StudyInstanceUID": src.StudyInstanceUID})
            # Exactly what an auto-routing PACS does: C-STORE the study to the AI node.
            orthanc.post("/modalities/ainode/store", data=study_id)

            def results_complete() -> tuple[list[str], bool] | None:
                """The study's modalities and whether a finding is positive, once all came."""
                series = orthanc.get(f"/studies/{study_id}/series")
                modalities = sorted(s["MainDicomTags"].get("Modality", "") for s in series)
                if not {"CR", "OT", "SR"} <= set(modalities):
                    return None
                sr_series = next(s for s in series if s["MainDicomTags"]["Modality"] == "SR")
                positive = has_positive(orthanc.instance_file(sr_series["Instances"][0]))
                # A Key Object Selection comes with positive findings only.
                return (modalities, positive) if ("KO" in modalities) == positive else None

            modalities, positive = wait_until(
                results_complete, 90, interval=0.5, describe=lambda: node.log()[-4000:]
            )
            log = node.log()
        assert modalities == sorted(["CR", "OT", "SR", *(["KO"] if positive else [])]), log[-4000:]
        series = orthanc.get(f"/studies/{study_id}/series")
        sr_series = next(s for s in series if s["MainDicomTags"]["Modality"] == "SR")
        ot_series = next(s for s in series if s["MainDicomTags"]["Modality"] == "OT")
        assert len(sr_series["Instances"]) == 1
        assert len(ot_series["Instances"]) == 2  # heatmap + findings card
        sr_bytes = orthanc.instance_file(sr_series["Instances"][0])
    got = sr_probabilities(sr_bytes)
    expected = models_test_probabilities(node.data_dir, source[0])
    assert len(got) == 18 and set(got) == set(expected)
    for name, p in expected.items():
        assert got[name] == pytest.approx(p, abs=1e-4), name
