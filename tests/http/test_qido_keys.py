"""QIDO-RS matching keys at every level, through the running node: AccessionNumber,
SOPClassUID (and its Warning at the study level), PatientName wildcards and StudyDate
ranges on the flat /series and /instances, limit/offset there, includefield and
fuzzymatching. Each asserts the result set (the shared node holds other tests' studies:
every query is narrowed to this module's patients)."""

from __future__ import annotations

import datetime as dt
import io

import pydicom
import pytest
import requests
from pydicom.dataset import Dataset

from dicom_node.synthetic import Patient, iter_ct_series, make_cr, new_uid
from tests.http.support import SC, multipart, post
from tests.support.node_process import NodeProcess

CT = "1.2.840.10008.5.1.4.1.1.2"
CR = "1.2.840.10008.5.1.4.1.1.1"


def _bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def studies(node: NodeProcess) -> dict[str, list[Dataset]]:
    """Study A (2020-01-05, accession KEYS-ACC-A): two CT slices in one series and a
    Secondary Capture in another; study B (2021-06-10, KEYS-ACC-B): one CR."""
    a = list(
        iter_ct_series(
            3,
            Patient(patient_id="KEYS-A", name="Keys^Anna"),
            rows=16,
            cols=16,
            seed=1531,
            study_uid=new_uid(),
            when=dt.datetime(2020, 1, 5, 10, 0),
        )
    )
    sc = a[2]  # the same study, another series and SOP class
    sc.SeriesInstanceUID, sc.SOPInstanceUID = new_uid(), new_uid()
    sc.SOPClassUID = sc.file_meta.MediaStorageSOPClassUID = SC
    sc.file_meta.MediaStorageSOPInstanceUID = sc.SOPInstanceUID
    sc.Modality = "OT"
    b = [
        make_cr(
            Patient(patient_id="KEYS-B", name="Keys^Bert"),
            rows=16,
            cols=16,
            seed=1532,
            study_uid=new_uid(),
            when=dt.datetime(2021, 6, 10, 9, 0),
        )
    ]
    for ds, accession in ((a, "KEYS-ACC-A"), (b, "KEYS-ACC-B")):
        for d in ds:
            d.AccessionNumber = accession
        assert post(node, multipart([_bytes(d) for d in ds])).status_code == 200
    return {"a": a, "b": b}


def qido(node: NodeProcess, path: str, **params: str) -> requests.Response:
    r = requests.get(f"{node.http_url}/dicomweb{path}", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r


def found(r: requests.Response, tag: str) -> list[str]:
    """The values of ``tag`` in the results, in their order."""
    return [item[tag]["Value"][0] for item in r.json()]


STUDY, SERIES, SOP = "0020000D", "0020000E", "00080018"


def test_accession_number_at_the_study_and_instance_levels(node: NodeProcess, studies) -> None:
    a = studies["a"]
    r = qido(node, "/studies", AccessionNumber="KEYS-ACC-A")
    assert found(r, STUDY) == [a[0].StudyInstanceUID]
    assert found(r, "00080050") == ["KEYS-ACC-A"]
    r = qido(node, "/instances", AccessionNumber="KEYS-ACC-A")
    assert sorted(found(r, SOP)) == sorted(d.SOPInstanceUID for d in a)
    assert sorted(found(qido(node, "/studies", AccessionNumber="KEYS-ACC-?"), STUDY)) == sorted(
        [a[0].StudyInstanceUID, studies["b"][0].StudyInstanceUID]
    )
    assert qido(node, "/instances", AccessionNumber="KEYS-ACC").json() == []


def test_sop_class_uid_on_instances_and_its_warning_on_studies(node: NodeProcess, studies) -> None:
    a = studies["a"]
    r = qido(node, "/instances", SOPClassUID=SC, PatientID="KEYS-A")
    assert found(r, SOP) == [a[2].SOPInstanceUID] and "Warning" not in r.headers
    r = qido(node, f"/studies/{a[0].StudyInstanceUID}/instances", SOPClassUID=CT)
    assert sorted(found(r, SOP)) == sorted(d.SOPInstanceUID for d in a[:2])
    assert found(r, "00080016") == [CT, CT]
    r = qido(node, "/instances", SOPClassUID=f"{CR},{SC}", PatientName="Keys^*")
    assert sorted(found(r, SOP)) == sorted([a[2].SOPInstanceUID, studies["b"][0].SOPInstanceUID])
    # Not a study-level key: ignored, with a Warning that says so.
    r = qido(node, "/studies", SOPClassUID=CR, PatientID="KEYS-A")
    assert found(r, STUDY) == [a[0].StudyInstanceUID]
    assert r.headers["Warning"] == (
        '299 dicom-node "SOPClassUID is not a supported matching key at the study level: '
        'it has been ignored."'
    )


def test_patient_name_and_study_date_on_flat_series_and_instances(
    node: NodeProcess, studies
) -> None:
    a, b = studies["a"], studies["b"]
    a_series = sorted({d.SeriesInstanceUID for d in a})
    r = qido(node, "/series", PatientName="keys^*")  # case-insensitive
    assert sorted(found(r, SERIES)) == sorted([*a_series, b[0].SeriesInstanceUID])
    r = qido(node, "/series", PatientName="Keys^A?na", StudyDate="20200101-20201231")
    assert sorted(found(r, SERIES)) == a_series
    r = qido(node, "/instances", PatientName="Keys^*", StudyDate="20210101-")
    assert found(r, SOP) == [b[0].SOPInstanceUID]
    r = qido(node, "/instances", PatientName="Keys^*", StudyDate="-20200105")
    assert sorted(found(r, SOP)) == sorted(d.SOPInstanceUID for d in a)
    assert qido(node, "/series", PatientName="Keys^*", StudyDate="20220101-").json() == []


def test_limit_and_offset_on_series_and_instances(node: NodeProcess, studies) -> None:
    every_series = found(qido(node, "/series", PatientName="Keys^*"), SERIES)
    pages = [
        found(qido(node, "/series", PatientName="Keys^*", limit="2", offset=str(o)), SERIES)
        for o in (0, 2, 4)
    ]
    assert pages == [every_series[:2], every_series[2:], []] and len(every_series) == 3
    every_instance = found(qido(node, "/instances", PatientName="Keys^*"), SOP)
    assert len(every_instance) == 4
    pages = [
        found(qido(node, "/instances", PatientName="Keys^*", limit="1", offset=str(o)), SOP)
        for o in range(5)
    ]
    assert pages == [[uid] for uid in every_instance] + [[]]


def test_includefield_all_on_series(node: NodeProcess, studies) -> None:
    b = studies["b"][0]
    # Matching keys are returned; the study's other attributes only when asked.
    plain = qido(node, "/series", SeriesInstanceUID=b.SeriesInstanceUID).json()
    assert len(plain) == 1 and "00100020" not in plain[0] and "00080050" not in plain[0]
    query = {"SeriesInstanceUID": b.SeriesInstanceUID, "includefield": "all"}
    (full,) = qido(node, "/series", **query).json()
    ds = Dataset.from_json(full)
    assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber, ds.StudyDate) == (
        "KEYS-B",
        "Keys^Bert",
        "KEYS-ACC-B",
        "20210610",
    )
    assert ds.SeriesInstanceUID == b.SeriesInstanceUID and ds.Modality == "CR"


def test_fuzzymatching_false_changes_nothing(node: NodeProcess, studies) -> None:
    for path in ("/studies", "/series", "/instances"):
        plain = qido(node, path, PatientName="Keys^*")
        literal = qido(node, path, PatientName="Keys^*", fuzzymatching="false")
        assert literal.json() == plain.json() and len(plain.json()) >= 2
        assert "Warning" not in literal.headers


def test_an_includefield_the_node_cannot_return_is_named_in_a_warning(
    node: NodeProcess, studies
) -> None:
    """PS3.18 lets a server leave out what it does not support; the Warning says so."""
    b = studies["b"][0]
    r = qido(
        node,
        "/series",
        SeriesInstanceUID=b.SeriesInstanceUID,
        includefield="PatientID,AcquisitionDateTime,Rows",
    )
    (series,) = r.json()
    assert series["00100020"]["Value"] == ["KEYS-B"] and "0008002A" not in series
    assert r.headers["Warning"] == (
        '299 dicom-node "includefield AcquisitionDateTime is not returned at the series '
        'level: it has been ignored.", 299 dicom-node "includefield Rows is not returned '
        'at the series level: it has been ignored."'
    )
    r = qido(node, "/instances", SeriesInstanceUID=b.SeriesInstanceUID, includefield="Rows")
    assert "Warning" not in r.headers and found(r, "00280010") == [16]
    for include in ("all", "NumberOfSeriesRelatedInstances", "RetrieveURL"):
        r = qido(node, "/series", SeriesInstanceUID=b.SeriesInstanceUID, includefield=include)
        assert "Warning" not in r.headers, include


def test_person_names_come_as_component_groups(node: NodeProcess) -> None:
    """PS3.18 F.2.2: a PN value in JSON is an object of its component groups
    (Alphabetic, Ideographic, Phonetic), never the ``=``-joined string; the same as
    pydicom's JSON of the stored element (and as the node's own /metadata)."""
    ds = next(iter_ct_series(1, Patient(patient_id="KEYS-PN"), rows=8, cols=8, seed=1533))
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.ReferringPhysicianName = "=医師^一郎"  # no alphabetic group
    ds = pydicom.dcmread(io.BytesIO(_bytes(ds)))  # as stored: encoded, decoded back
    assert post(node, multipart([_bytes(ds)])).status_code == 200
    expected = {
        "00100010": ds["PatientName"].to_json_dict(None, 0),
        "00080090": ds["ReferringPhysicianName"].to_json_dict(None, 0),
    }
    assert expected["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]
    include = {"includefield": "PatientName,ReferringPhysicianName"}
    for path in ("/studies", "/series", "/instances"):
        (item,) = qido(node, path, PatientID="KEYS-PN", **include).json()
        assert {tag: item[tag] for tag in expected} == expected, path


def test_series_dates_and_times_as_pydicom_has_them(node: NodeProcess) -> None:
    """Through the receive path (STOW-RS): a series with SeriesDate/SeriesTime and
    PerformedProcedureStepStartDate/Time is returned with them, as pydicom's JSON of the
    stored elements; a series without them returns none of them (no empty elements);
    SeriesDate matches ranges; includefield returns them on instances."""
    study = new_uid()
    dated, bare = (
        next(
            iter_ct_series(
                1,
                Patient(patient_id="KEYS-SD", name="Dated^Sam"),
                rows=8,
                cols=8,
                seed=1534 + n,
                study_uid=study,
                when=dt.datetime(2022, 3, 4, 10, 0),
            )
        )
        for n in range(2)
    )
    dated.SeriesDate, dated.SeriesTime = "20220305", "101530.25"
    dated.PerformedProcedureStepStartDate = "20220305"
    dated.PerformedProcedureStepStartTime = "1015"
    del bare.SeriesDate, bare.SeriesTime
    assert post(node, multipart([_bytes(dated), _bytes(bare)])).status_code == 200
    keywords = (
        "SeriesDate",
        "SeriesTime",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
    )
    tags = [f"{dated[k].tag:08X}" for k in keywords]
    expected = {t: dated[k].to_json_dict(None, 0) for t, k in zip(tags, keywords, strict=True)}

    def dates_of(item: dict) -> dict:
        return {t: item[t] for t in tags if t in item}

    by_series = {
        s[SERIES]["Value"][0]: s for s in qido(node, "/series", PatientID="KEYS-SD").json()
    }
    assert dates_of(by_series[dated.SeriesInstanceUID]) == expected
    assert dates_of(by_series[bare.SeriesInstanceUID]) == {}
    for dates, hit in (("20220301-20220331", True), ("20220305", True), ("-20220304", False)):
        r = qido(node, f"/studies/{study}/series", SeriesDate=dates)
        assert found(r, SERIES) == ([dated.SeriesInstanceUID] if hit else []), dates
    r = qido(node, "/instances", PatientID="KEYS-SD", includefield=",".join(keywords))
    got = {i[SOP]["Value"][0]: dates_of(i) for i in r.json()}
    assert got == {dated.SOPInstanceUID: expected, bare.SOPInstanceUID: {}}
    assert "Warning" not in r.headers
