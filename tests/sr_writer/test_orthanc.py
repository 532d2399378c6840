"""A real PACS (Orthanc) accepts the SR and the SCs by C-STORE into the source study."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sr_writer import WriteOptions
from tests.support.dcmtk import find_dcmtk_tool, storescu
from tests.support.orthanc import Orthanc

from .support import SOURCES, WHEN, save, write

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        shutil.which("Orthanc") is None
        and not Path("/usr/sbin/Orthanc").exists()
        or find_dcmtk_tool("storescu") is None,
        reason="Orthanc or DCMTK storescu not installed",
    ),
]


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    with Orthanc(tmp_path / "orthanc", dicomweb=False) as peer:
        yield peer


def _store_study(orthanc: Orthanc, sources, out, tmp_path: Path) -> list[dict]:
    """storescu sources and results to Orthanc; the series of the one study it holds."""
    files = [save(ds, tmp_path, f"source{i}") for i, ds in enumerate(sources)]
    files += [save(ds, tmp_path, f"result{i}") for i, ds in enumerate(out.all())]
    sent = storescu(orthanc.dicom_port, files, "ORTHANC", "DICOMNODE", "-R")
    assert sent.returncode == 0, sent.stdout[-2000:] + sent.stderr
    studies = orthanc.get("/studies")
    assert len(studies) == 1
    study = orthanc.get(f"/studies/{studies[0]}")
    assert study["MainDicomTags"]["StudyInstanceUID"] == sources[0].StudyInstanceUID
    return [orthanc.get(f"/series/{s}") for s in study["Series"]]


def test_orthanc_stores_results_in_source_study(orthanc: Orthanc, tmp_path: Path) -> None:
    sources = SOURCES["cr"]()
    out = write(sources)
    series = _store_study(orthanc, sources, out, tmp_path)
    by_modality = {s["MainDicomTags"]["Modality"]: s for s in series}
    assert set(by_modality) == {"CR", "SR", "OT", "KO"}
    assert len(by_modality["OT"]["Instances"]) == len(out.heatmaps) + 1
    assert by_modality["KO"]["MainDicomTags"]["SeriesInstanceUID"] == out.kos.SeriesInstanceUID
    assert "AI" in by_modality["SR"]["MainDicomTags"]["SeriesDescription"]


def test_orthanc_stores_kos_and_parametric_maps_in_source_study(
    orthanc: Orthanc, tmp_path: Path
) -> None:
    sources = SOURCES["ct"]()
    out = write(sources, WriteOptions(created_at=WHEN, parametric_map=True))
    assert out.kos is not None and len(out.pmaps) == 1  # one map: the CT series
    series = _store_study(orthanc, sources, out, tmp_path)
    by_uid = {s["MainDicomTags"]["SeriesInstanceUID"]: s for s in series}
    assert len(by_uid[out.kos.SeriesInstanceUID]["Instances"]) == 1
    assert len(by_uid[out.pmaps[0].SeriesInstanceUID]["Instances"]) == len(out.pmaps)
    stored = {
        orthanc.metadata(i, "SopClassUid")
        for i in by_uid[out.pmaps[0].SeriesInstanceUID]["Instances"]
    }
    assert stored == {"1.2.840.10008.5.1.4.1.1.30"}  # Parametric Map Storage
