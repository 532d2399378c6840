"""A real PACS (Orthanc) accepts the SR and the SCs by C-STORE into the source study."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from sr_writer import WriteOptions
from tests.support.ports import free_port, wait_for_port

from .support import SOURCES, WHEN, save, write

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        shutil.which("Orthanc") is None
        and not Path("/usr/sbin/Orthanc").exists()
        or shutil.which("storescu") is None,
        reason="Orthanc or DCMTK storescu not installed",
    ),
]


@pytest.fixture()
def orthanc(tmp_path: Path):
    http, dicom = free_port(), free_port()
    config = {
        "Name": "sr-writer-test",
        "StorageDirectory": str(tmp_path / "storage"),
        "IndexDirectory": str(tmp_path / "index"),
        "HttpPort": http,
        "DicomPort": dicom,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "Plugins": [],
    }
    path = tmp_path / "orthanc.json"
    path.write_text(json.dumps(config))
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    log = (tmp_path / "orthanc.log").open("w")
    proc = subprocess.Popen([binary, str(path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(http, timeout=30)
        wait_for_port(dicom, timeout=30)
        yield f"http://127.0.0.1:{http}", dicom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _store_study(orthanc, sources, out, tmp_path: Path) -> list[dict]:
    """storescu sources and results to Orthanc; the series of the one study it holds."""
    base, dicom_port = orthanc
    files = [save(ds, tmp_path, f"source{i}") for i, ds in enumerate(sources)]
    files += [save(ds, tmp_path, f"result{i}") for i, ds in enumerate(out.all())]
    proc = subprocess.run(
        [
            "storescu",
            "-R",
            "-aet",
            "DICOMNODE",
            "-aec",
            "ORTHANC",
            "127.0.0.1",
            str(dicom_port),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    studies = requests.get(f"{base}/studies", timeout=10).json()
    assert len(studies) == 1
    study = requests.get(f"{base}/studies/{studies[0]}", timeout=10).json()
    assert study["MainDicomTags"]["StudyInstanceUID"] == sources[0].StudyInstanceUID
    return [requests.get(f"{base}/series/{s}", timeout=10).json() for s in study["Series"]]


def test_orthanc_stores_results_in_source_study(orthanc, tmp_path: Path) -> None:
    sources = SOURCES["cr"]()
    out = write(sources)
    series = _store_study(orthanc, sources, out, tmp_path)
    by_modality = {s["MainDicomTags"]["Modality"]: s for s in series}
    assert set(by_modality) == {"CR", "SR", "OT", "KO"}
    assert len(by_modality["OT"]["Instances"]) == len(out.heatmaps) + 1
    assert by_modality["KO"]["MainDicomTags"]["SeriesInstanceUID"] == out.kos.SeriesInstanceUID
    assert "AI" in by_modality["SR"]["MainDicomTags"]["SeriesDescription"]


def test_orthanc_stores_kos_and_parametric_maps_in_source_study(orthanc, tmp_path: Path) -> None:
    sources = SOURCES["ct"]()
    out = write(sources, WriteOptions(created_at=WHEN, parametric_map=True))
    assert out.kos is not None and len(out.pmaps) == 1  # one map: the CT series
    series = _store_study(orthanc, sources, out, tmp_path)
    by_uid = {s["MainDicomTags"]["SeriesInstanceUID"]: s for s in series}
    assert len(by_uid[out.kos.SeriesInstanceUID]["Instances"]) == 1
    assert len(by_uid[out.pmaps[0].SeriesInstanceUID]["Instances"]) == len(out.pmaps)
    base = orthanc[0]
    stored = {
        requests.get(f"{base}/instances/{i}/metadata/SopClassUid", timeout=10).text
        for i in by_uid[out.pmaps[0].SeriesInstanceUID]["Instances"]
    }
    assert stored == {"1.2.840.10008.5.1.4.1.1.30"}  # Parametric Map Storage
