"""QIDO-RS and WADO-RS with dicomweb-client against the running node: what STOW-RS stored
is found by the standard query shapes and comes back byte for byte."""

from __future__ import annotations

import io

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset

from dicom_node.synthetic import Patient, iter_ct_series, make_cr, new_uid, write_files
from tests.support.node_process import NodeProcess


@pytest.fixture(scope="module")
def stored(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A CT study and a CR of two patients, stored by STOW-RS."""
    folder = tmp_path_factory.mktemp("qido")
    ct_files = write_files(
        iter_ct_series(
            3,
            Patient(patient_id="QIDO-CT", name="Qido^Carla"),
            rows=32,
            cols=32,
            seed=71,
            study_uid=new_uid(),
        ),
        folder / "ct",
    )
    cr = make_cr(
        Patient(patient_id="QIDO-CR", name="Qido^Ronald"),
        rows=64,
        cols=64,
        seed=72,
        study_uid=new_uid(),
    )
    cr_files = write_files([cr], folder / "cr")
    client = DICOMwebClient(node.http_url + "/dicomweb")
    for files in (ct_files, cr_files):
        client.store_instances([pydicom.dcmread(f) for f in files])
    return {
        "client": client,
        "ct": ct_files,
        "cr": cr_files,
        "ct_study": pydicom.dcmread(ct_files[0]).StudyInstanceUID,
        "cr_study": cr.StudyInstanceUID,
        "cr_ds": pydicom.dcmread(cr_files[0]),
    }


def _values(results: list[dict], tag: str) -> list:
    return [r[tag]["Value"][0] if "Value" in r[tag] else None for r in results]


def test_qido_study_queries(stored: dict) -> None:
    client: DICOMwebClient = stored["client"]
    ct, cr = stored["ct_study"], stored["cr_study"]
    by_id = client.search_for_studies(search_filters={"PatientID": "QIDO-CT"})
    assert _values(by_id, "0020000D") == [ct]
    study = Dataset.from_json(by_id[0])
    assert study.ModalitiesInStudy == "CT" and study.NumberOfStudyRelatedInstances == 3
    assert study.NumberOfStudyRelatedSeries == 1 and str(study.PatientName) == "Qido^Carla"
    wildcard = client.search_for_studies(search_filters={"PatientName": "qido*"})
    assert sorted(_values(wildcard, "0020000D")) == sorted([ct, cr])
    by_modality = client.search_for_studies(
        search_filters={"ModalitiesInStudy": "CR", "PatientName": "Qido*"}
    )
    assert _values(by_modality, "0020000D") == [cr]
    uid_list = client.search_for_studies(search_filters={"StudyInstanceUID": f"{ct},{cr}"})
    assert len(uid_list) == 2
    date = study.StudyDate
    in_range = client.search_for_studies(
        search_filters={"StudyDate": f"{date}-{date}", "PatientID": "QIDO-CT"}
    )
    assert len(in_range) == 1
    assert client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"}) == []
    paged = [
        client.search_for_studies(search_filters={"PatientName": "Qido*"}, limit=1, offset=i)
        for i in (0, 1, 2)
    ]
    assert [len(p) for p in paged] == [1, 1, 0]
    assert {_values(p, "0020000D")[0] for p in paged[:2]} == {ct, cr}


def test_qido_series_and_instances_flat_and_nested(stored: dict) -> None:
    client: DICOMwebClient = stored["client"]
    ct = stored["ct_study"]
    series = client.search_for_series(ct)
    assert len(series) == 1 and _values(series, "00080060") == ["CT"]
    assert _values(series, "00201209") == [3]
    se = _values(series, "0020000E")[0]
    nested = client.search_for_instances(ct, se)
    flat = client.search_for_instances(search_filters={"SeriesInstanceUID": se})
    assert sorted(_values(nested, "00080018")) == sorted(_values(flat, "00080018"))
    assert sorted(_values(nested, "00080018")) == sorted(
        pydicom.dcmread(f).SOPInstanceUID for f in stored["ct"]
    )
    assert "00100020" not in nested[0]  # study attributes only when asked
    with_patient = client.search_for_instances(ct, se, fields=["PatientID"])
    assert _values(with_patient, "00100020") == ["QIDO-CT"] * 3
    flat_series = client.search_for_series(
        search_filters={"Modality": "CR", "PatientID": "QIDO-CR"}
    )
    assert _values(flat_series, "0020000D") == [stored["cr_study"]]


def test_qido_bad_queries_answer_problems(node: NodeProcess) -> None:
    for query in ("StudyDate=2024", "NoSuchKeyword=1", "limit=-1"):
        r = requests.get(f"{node.http_url}/dicomweb/studies?{query}", timeout=10)
        assert r.status_code == 400, query
        assert r.headers["content-type"] == "application/problem+json"


def test_wado_returns_byte_identical_instances(stored: dict, node: NodeProcess) -> None:
    client: DICOMwebClient = stored["client"]
    originals = {pydicom.dcmread(f).SOPInstanceUID: f.read_bytes() for f in stored["ct"]}
    got = client.retrieve_study(stored["ct_study"], media_types=(("application/dicom", "*"),))
    assert len(got) == 3
    for ds in got:
        out = io.BytesIO()
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
        assert ds == pydicom.dcmread(io.BytesIO(originals[ds.SOPInstanceUID]))
    # The raw parts are the stored files, byte for byte.
    r = requests.get(
        f"{node.http_url}/dicomweb/studies/{stored['ct_study']}",
        timeout=30,
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert r.status_code == 200
    for original in originals.values():
        assert original in r.content
    cr = stored["cr_ds"]
    one = client.retrieve_instance(cr.StudyInstanceUID, cr.SeriesInstanceUID, cr.SOPInstanceUID)
    assert one == cr


def test_wado_metadata_bulkdata_and_rendered(stored: dict) -> None:
    client: DICOMwebClient = stored["client"]
    cr: Dataset = stored["cr_ds"]
    meta = client.retrieve_instance_metadata(
        cr.StudyInstanceUID, cr.SeriesInstanceUID, cr.SOPInstanceUID
    )
    ds = Dataset.from_json(meta)  # valid DICOM JSON
    assert ds.SOPInstanceUID == cr.SOPInstanceUID and ds.Rows == 64
    uri = meta["7FE00010"]["BulkDataURI"]
    pixels = client.retrieve_bulkdata(uri)
    assert pixels == [cr.PixelData]
    png = client.retrieve_instance_rendered(
        cr.StudyInstanceUID, cr.SeriesInstanceUID, cr.SOPInstanceUID, media_types=("image/png",)
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (64, 64)
    jpeg = client.retrieve_instance_rendered(
        cr.StudyInstanceUID, cr.SeriesInstanceUID, cr.SOPInstanceUID
    )
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


def test_wado_unknown_study_is_404(node: NodeProcess) -> None:
    r = requests.get(f"{node.http_url}/dicomweb/studies/1.2.3.4.5/metadata", timeout=10)
    assert r.status_code == 404 and r.json()["status"] == 404
