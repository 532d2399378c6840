"""OHIF's DICOMweb data source (the published @ohif/extension-default 3.13.13, run by
tests/viewers/ohif_datasource.mjs) against the running node, the path OHIF's study list
and viewer take: QIDO-RS study search (the list's rows, with each filter the list has),
series search (a row's series), and the viewer's load (WADO-RS series metadata, or the
study's with lazy loading off), naturalized by OHIF into instances whose imageIds the
Cornerstone loader then fetches frames by (ohif_frames.mjs).

Expected values come from the stored files (pydicom), names as OHIF formats them."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from dicom_node.synthetic import Patient, iter_ct_series, make_cr, new_uid
from tests.sr_writer.support import write
from tests.support.node_process import NodeProcess
from tests.support.viewers import datasource_unavailable, run_ohif_datasource, run_ohif_frames

pytestmark = pytest.mark.skipif(
    datasource_unavailable() is not None, reason=str(datasource_unavailable())
)

CT_PATIENT = Patient(patient_id="OHIFDS-CT", name="Ohif^Ct", birth_date="19610203")
# Three component groups, as a Japanese site writes them (ISO 2022 IR 87).
CR_PATIENT = Patient(
    patient_id="OHIFDS-CR", name="Yamada^Tarou=山田^太郎=やまだ^たろう", birth_date="19720304"
)
MF_SC = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC Image Storage


def _multiframe(study: Dataset) -> Dataset:
    """Three different 16-bit frames in a series of their own in ``study``."""
    ds = next(iter_ct_series(1, CT_PATIENT, rows=8, cols=8, seed=13, study_uid=new_uid()))
    ds.StudyInstanceUID = study.StudyInstanceUID
    ds.SeriesInstanceUID, ds.SOPInstanceUID = new_uid(), new_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MF_SC
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "OT", 7, "THREE FRAMES"
    for keyword in ("RescaleIntercept", "RescaleSlope", "RescaleType"):
        delattr(ds, keyword)
    ds.NumberOfFrames = 3
    ds.PixelData = np.stack([np.full((8, 8), 100 * (i + 1), np.uint16) for i in range(3)]).tobytes()
    return ds


@pytest.fixture(scope="module")
def stored(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """A CT study (3 slices and a 3-frame instance), a CR study with the SR and heatmap SC
    our result writer makes for it; stored by STOW-RS one instance a request (the shared
    node takes 1 MB a request) and read back from the files."""
    folder = tmp_path_factory.mktemp("ohif")
    ct = list(iter_ct_series(3, CT_PATIENT, rows=32, cols=32, seed=11, study_uid=new_uid()))
    ct[0].ProcedureCodeSequence = Sequence()  # empty: its VR alone in DICOM JSON (F.2.5)
    cr = make_cr(CR_PATIENT, rows=64, cols=48, seed=12, study_uid=new_uid())
    cr.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    results = write([cr])
    made = {"ct": [*ct, _multiframe(ct[0])], "cr": [cr, results.sr, *results.heatmaps]}
    client = DICOMwebClient(node.http_url + "/dicomweb")
    for name, datasets in made.items():
        for i, ds in enumerate(datasets):
            path = folder / f"{name}{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            datasets[i] = pydicom.dcmread(path)
            client.store_instances([datasets[i]])
    return made


def _study(stored: dict[str, list], key: str) -> str:
    return stored[key][0].StudyInstanceUID


# The study list's filters (as OHIF's DataSourceWrapper builds them from the list's URL),
# each narrowed to this module's two patients, and which of their studies each finds.
FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"patientId": "OHIFDS"}, {"ct", "cr"}),  # OHIF adds the wildcards: *OHIFDS*
    ({"patientName": "ohif", "patientId": "OHIFDS"}, {"ct"}),
    ({"patientName": "yamada", "patientId": "OHIFDS"}, {"cr"}),
    ({"patientId": "OHIFDS-CR", "disableWildcard": True}, {"cr"}),  # the viewer's priors
    ({"patientId": "OHIFDS", "modalitiesInStudy": ["CT"]}, {"ct"}),
    ({"patientId": "OHIFDS", "modalitiesInStudy": ["MR", "SR"]}, {"cr"}),
    ({"patientId": "OHIFDS", "startDate": "20260101", "endDate": "20260102"}, {"ct", "cr"}),
    ({"patientId": "OHIFDS", "startDate": "20260103", "endDate": "20260131"}, set()),
    ({"patientId": "OHIFDS", "accessionNumber": "ACC000012"}, {"cr"}),
    ({"patientId": "OHIFDS", "studyDescription": "CT STUDY"}, {"ct"}),
]


def _config(node: NodeProcess, stored: dict[str, list], lazy: bool) -> dict[str, Any]:
    by_uid = {"studyInstanceUid": [_study(stored, "ct"), _study(stored, "cr")]}
    return {
        "root": node.http_url + "/dicomweb",
        "lazy": lazy,
        "studyFilters": [{}, by_uid, *(f for f, _ in FILTERS)],
        "studies": [_study(stored, "ct"), _study(stored, "cr")],
    }


@pytest.fixture(scope="module")
def lazy_load(node: NodeProcess, stored: dict[str, list]) -> dict:
    """The harness's output with series metadata per series (OHIF's default)."""
    output = run_ohif_datasource(_config(node, stored, lazy=True))
    assert output["versions"]["@ohif/extension-default"] == "3.13.13"
    return output


@pytest.fixture(scope="module")
def study_load(node: NodeProcess, stored: dict[str, list]) -> dict:
    """The harness's output with the study's metadata at once (lazy loading off)."""
    return run_ohif_datasource(_config(node, stored, lazy=False))


@pytest.fixture(params=["lazy_load", "study_load"])
def ohif(request: pytest.FixtureRequest) -> dict:
    return request.getfixturevalue(request.param)


def _shown_name(ds: Dataset) -> str:
    """The name as OHIF's list shows it: the alphabetic group, 'Family, Given'."""
    name = ds.PatientName
    return f"{name.family_name}, {name.given_name}"


def test_every_request_succeeds(ohif: dict, node: NodeProcess) -> None:
    assert ohif["requests"], "OHIF sent nothing"
    for request in ohif["requests"]:
        assert request["url"].startswith(node.http_url + "/dicomweb/"), request
        assert request.get("status") == 200, request


def test_study_list_rows(ohif: dict, stored: dict[str, list]) -> None:
    searches = ohif["studySearches"]
    assert all(s["error"] is None for s in searches), [s["error"] for s in searches]
    assert 0 < len(searches[0]["value"]) <= 101  # unfiltered: the list as it opens
    assert {r["studyInstanceUid"] for r in searches[1]["value"]} == {
        _study(stored, "ct"),
        _study(stored, "cr"),
    }
    for key in ("ct", "cr"):
        (row,) = [r for r in searches[1]["value"] if r["studyInstanceUid"] == _study(stored, key)]
        ds = stored[key][0]
        assert row == {
            "studyInstanceUid": ds.StudyInstanceUID,
            "date": ds.StudyDate,
            "time": ds.StudyTime,
            "accession": ds.AccessionNumber,
            "mrn": ds.PatientID,
            "patientName": _shown_name(ds),
            "patientBirthDate": ds.PatientBirthDate,
            "instances": len(stored[key]),
            "description": ds.StudyDescription,
            "modalities": row["modalities"],  # order is the server's
            "referringPhysicianName": "",
        }
        assert set(row["modalities"].split("\\")) == {d.Modality for d in stored[key]}
    for (filters, expected), search in zip(FILTERS, searches[2:], strict=True):
        assert search["filters"] == filters
        found = {r["studyInstanceUid"] for r in search["value"]}
        assert found == {_study(stored, k) for k in expected}, filters


def test_series_rows(ohif: dict, stored: dict[str, list]) -> None:
    for key in ("ct", "cr"):
        got = ohif["studies"][_study(stored, key)]["series"]
        assert got["error"] is None
        rows = {r["seriesInstanceUid"]: r for r in got["value"]}
        series: dict[str, list[Dataset]] = {}
        for ds in stored[key]:
            series.setdefault(ds.SeriesInstanceUID, []).append(ds)
        assert set(rows) == set(series)
        for uid, datasets in series.items():
            ds = datasets[0]
            assert (
                rows[uid]["modality"],
                rows[uid]["seriesNumber"],
                rows[uid]["numSeriesInstances"],
                rows[uid]["description"],
            ) == (ds.Modality, str(ds.SeriesNumber), len(datasets), ds.SeriesDescription)


def _numbers(value: Any) -> list[float]:
    return [float(v) for v in (value if isinstance(value, list | MultiValue) else [value])]


# What OHIF's viewer and Cornerstone read off each image (its MetadataProvider modules).
IMAGE_KEYS = ["Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated"]
IMAGE_KEYS += ["BitsStored", "HighBit", "PixelRepresentation", "InstanceNumber", "Modality"]
NUMERIC = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"]
NUMERIC += ["WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope"]


def _loaded(ohif: dict, stored: dict[str, list]) -> list[tuple[dict, Dataset]]:
    """Each instance OHIF loaded, with the stored dataset it must be."""
    out = []
    for key in ("ct", "cr"):
        study = ohif["studies"][_study(stored, key)]
        assert study["metadataError"] is None
        by_uid = {i["naturalized"]["SOPInstanceUID"]: i for i in study["instances"]}
        assert set(by_uid) == {ds.SOPInstanceUID for ds in stored[key]}
        out += [(by_uid[ds.SOPInstanceUID], ds) for ds in stored[key]]
    return out


def test_instances_as_the_viewer_needs_them(ohif: dict, stored: dict[str, list]) -> None:
    for instance, ds in _loaded(ohif, stored):
        n = instance["naturalized"]
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "PatientID"):
            assert n[keyword] == ds[keyword].value, keyword
        assert n["PatientName"][0]["Alphabetic"] == ds.PatientName.alphabetic
        if "ProcedureCodeSequence" in ds:  # empty: no Value, which dcmjs makes null
            assert n["ProcedureCodeSequence"] is None
        if "PixelData" not in ds:  # the SR: its content tree, inline
            assert len(n["ContentSequence"]) == len(ds.ContentSequence)
            continue
        for keyword in IMAGE_KEYS:
            assert n[keyword] == ds[keyword].value, keyword
        for keyword in NUMERIC:
            if keyword in ds:
                assert _numbers(n[keyword]) == pytest.approx(_numbers(ds[keyword].value))
        assert int(n.get("NumberOfFrames", 1)) == int(ds.get("NumberOfFrames", 1))
        plane = instance["provider"]["imagePlaneModule"]
        assert (plane["rows"], plane["columns"]) == (ds.Rows, ds.Columns)
        if "ImagePositionPatient" in ds:  # the CT: placed in the patient, not defaults
            assert plane["usingDefaultValues"] is False
            assert plane["imagePositionPatient"] == pytest.approx(_numbers(ds.ImagePositionPatient))
            assert plane["pixelSpacing"] == pytest.approx(_numbers(ds.PixelSpacing))
        pixel = instance["provider"]["imagePixelModule"]
        assert pixel["photometricInterpretation"] == ds.PhotometricInterpretation


def test_image_ids_and_bulk_data(ohif: dict, node: NodeProcess, stored: dict[str, list]) -> None:
    root = node.http_url + "/dicomweb"
    for instance, ds in _loaded(ohif, stored):
        url = (
            f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}"
        )
        frames = int(ds.get("NumberOfFrames", 1))
        assert instance["imageIds"] == [f"wadors:{url}/frames/{f}" for f in range(1, frames + 1)]
        assert instance["uidsFromImageId"]["SOPInstanceUID"] == ds.SOPInstanceUID
        if "PixelData" in ds:  # an absolute URI OHIF resolves as it is
            assert instance["pixelDataBulkDataURI"].startswith(url + "/")
    for key in ("ct", "cr"):
        bulk = ohif["studies"][_study(stored, key)]["bulkRetrieve"]
        (ds,) = [d for d in stored[key] if d.SOPInstanceUID == bulk["SOPInstanceUID"]]
        assert bulk["error"] is None and bulk["byteLength"] == len(ds.PixelData)


def test_frames_fetched_by_ohifs_image_ids(
    lazy_load: dict, study_load: dict, stored: dict[str, list]
) -> None:
    """Cornerstone's WADO-RS loader fetches each frame by the imageId OHIF made (the same
    whichever way it loaded the metadata): the pixels are the stored ones."""
    by_load = [[i["imageIds"] for i, _ in _loaded(o, stored)] for o in (lazy_load, study_load)]
    assert by_load[0] == by_load[1]
    loaded = [(i, ds) for i, ds in _loaded(lazy_load, stored) if ds.get("BitsAllocated") == 16]
    urls = [image_id.removeprefix("wadors:") for i, _ in loaded for image_id in i["imageIds"]]
    expected = []
    for _, ds in loaded:
        size = ds.Rows * ds.Columns * 2
        expected += [
            ds.PixelData[k * size : (k + 1) * size] for k in range(len(ds.PixelData) // size)
        ]
    got = run_ohif_frames(urls)
    assert [g["status"] for g in got] == [200] * len(urls)
    assert [base64.b64decode(g["pixelData"]) for g in got] == expected
    assert len(expected) == 3 + 3 + 1  # CT slices, the three frames, the CR
