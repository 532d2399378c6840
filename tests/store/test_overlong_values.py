"""Values longer than their index column (issue pglen). PostgreSQL refuses a value
longer than its VARCHAR (counted in characters), which failed the INSERT: the sender got
0xA700 and retried a deterministic error for ever. SQLite does not enforce lengths.

Each string column the intake fills gets an instance whose attribute is far over the
column (non-ASCII where the VR allows), by C-STORE and by STOW-RS, on both databases:
the instance is stored and indexed, the file unchanged; the index keeps names and
descriptions clipped to the column, and nothing of identifiers, codes, dates and times
(a prefix of those would read as another valid value); one WARNING names the instance,
the attribute and what was done; WADO-RS returns the file as it came."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import requests
from pydicom.dataset import Dataset
from sqlalchemy import String

from dicom_node.index.header import InstanceHeader, dataset_offset
from dicom_node.index.tables import Group, Instance
from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.http.support import multipart, post
from tests.store.support import node_config, write_part10
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

pytestmark = [pytest.mark.peer, pytest.mark.filterwarnings("ignore::UserWarning")]

# Each string column the intake fills from the header, and its attribute. UIDs are not
# here: one over 64 characters is refused (0xC3xx / 0xA9xx), tested elsewhere.
KEYWORDS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "accession_number": "AccessionNumber",
    "study_date": "StudyDate",
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "series_description": "SeriesDescription",
    "view_position": "ViewPosition",
    "image_type": "ImageType",
    "study_time": "StudyTime",
    "study_description": "StudyDescription",
    "study_id": "StudyID",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "referring_physician": "ReferringPhysicianName",
    "series_date": "SeriesDate",
    "series_time": "SeriesTime",
    "pps_start_date": "PerformedProcedureStepStartDate",
    "pps_start_time": "PerformedProcedureStepStartTime",
}
UIDS = {"sop_class_uid", "sop_instance_uid", "study_uid", "series_uid"}
# Free text: a prefix still says the same (clipped). Anything else: left out (NULL).
CLIPPED = {"patient_name", "referring_physician", "series_description", "study_description"}
LENGTH = {c.name: c.type.length for c in Instance.__table__.columns if isinstance(c.type, String)}


def test_every_string_column_the_header_fills_is_covered() -> None:
    fields = {f.name for f in dataclasses.fields(InstanceHeader)}
    assert set(KEYWORDS) == (fields & set(LENGTH)) - UIDS
    # The group's copies of header values are no shorter than the instance's columns.
    for column in Group.__table__.columns:
        if column.name in KEYWORDS:
            assert column.type.length >= LENGTH[column.name], column.name


def _overlong(column: str) -> str | list[str]:
    """A value of ``column``'s attribute three times its column's length (and more)."""
    n = 3 * LENGTH[column]
    keyword = KEYWORDS[column]
    if keyword == "ImageType":
        return ["ORIGINAL", "PRIMARY", *["AXIAL"] * (n // 6)]
    if keyword.endswith("Date"):
        return "20240102" * (n // 8)
    if keyword.endswith("Time"):
        return "101112.123456" + "7" * n
    if column in ("modality", "body_part", "view_position", "patient_sex"):
        return "AB_1" * (n // 4)  # CS: ASCII only
    return ("Zoë Müller " * n)[:n].rstrip()  # PN, LO, SH: characters, not bytes, count


def _instance(column: str) -> Dataset:
    ds = next(
        iter_ct_series(1, Patient(patient_id="LEN"), rows=8, cols=8, seed=5, study_uid=new_uid())
    )
    ds.SpecificCharacterSet = "ISO_IR 192"
    setattr(ds, KEYWORDS[column], _overlong(column))
    return ds


def _expected(column: str) -> str | None:
    if column not in CLIPPED:
        return None
    value = _overlong(column)
    assert isinstance(value, str) and not value.isascii()
    return value[: LENGTH[column]].rstrip()


def _dataset_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return data[dataset_offset(data[:144]) :]


def _wado(proc: NodeProcess, ds: Dataset) -> bytes:
    url = (
        f"{proc.http_url}/dicomweb/studies/{ds.StudyInstanceUID}"
        f"/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    r = requests.get(url, headers={"Accept": accept}, timeout=30)
    assert r.status_code == 200, r.text[:500]
    return r.content


def test_overlong_values_are_indexed_bounded_by_c_store_and_stow(
    tmp_path: Path, index_url: str
) -> None:
    sent: dict[str, tuple[str, Dataset, Path]] = {}  # SOP UID -> (column, dataset, file)
    with NodeProcess(tmp_path / "node", node_config(index_url)) as proc:
        statuses = {}
        for column in KEYWORDS:
            ds = _instance(column)
            path = write_part10(ds, tmp_path / f"cstore-{column}.dcm")
            sent[ds.SOPInstanceUID] = (column, ds, path)
            statuses[column] = store_file_raw(proc.port, path)
        assert statuses == dict.fromkeys(KEYWORDS, 0)

        parts = []
        for column in KEYWORDS:
            ds = _instance(column)
            path = write_part10(ds, tmp_path / f"stow-{column}.dcm")
            sent[ds.SOPInstanceUID] = (column, ds, path)
            parts.append(path.read_bytes())
        r = post(proc, multipart(parts))
        assert r.status_code == 200, r.text[:2000]
        body = json.loads(r.content)
        assert "00081198" not in body, body  # FailedSOPSequence
        assert len(body["00081199"]["Value"]) == len(KEYWORDS)

        log = proc.log()
        for sop, (column, ds, path) in sent.items():
            rows = query(
                proc.index,
                f"SELECT {column}, path FROM instances WHERE sop_instance_uid = :s",
                s=sop,
            )
            assert len(rows) == 1, (column, sop)
            value, stored = rows[0]
            assert value == _expected(column), column
            assert _dataset_bytes(Path(stored)) == _dataset_bytes(path), column
            assert _dataset_bytes(path) in _wado(proc, ds), column
            keyword = KEYWORDS[column]
            done = "clipped" if column in CLIPPED else "not indexed"
            warnings = [
                line
                for line in log.splitlines()
                if " WARNING " in line and sop in line and keyword in line
            ]
            assert len(warnings) == 1, (column, warnings)
            assert re.search(rf"\b{done}\b", warnings[0]), warnings[0]
        assert "indexing failed" not in log
        # pydicom's own validation warnings (a pydicom: and a py.warnings: line per
        # value) name no instance: the node's one line per instance is the only one.
        names = [sop for sop in sent] + [ds.StudyInstanceUID for _, ds, _ in sent.values()]
        stray = [
            line
            for line in log.splitlines()
            if " WARNING " in line and not any(name in line for name in names)
        ]
        assert not stray, stray[:4]
        for sop in sent:
            assert len([ln for ln in log.splitlines() if " WARNING " in ln and sop in ln]) == 1
        _at_the_limit_with_nul_and_many_modalities(proc, tmp_path)


def _at_the_limit_with_nul_and_many_modalities(proc: NodeProcess, tmp_path: Path) -> None:
    """A non-ASCII name of exactly its column's length in characters (twice that in
    bytes) is indexed whole, without a warning; a value holding a NUL (PostgreSQL refuses
    one in text) is not indexed; a study of more distinct 16-character modalities than
    its group's list holds keeps those that fit."""
    whole = _instance("patient_name")
    whole.PatientName = "ë" * LENGTH["patient_name"]
    nul = _instance("series_description")
    nul.SeriesDescription = "HEAD\0NECK"
    huge = _instance("study_description")  # over 4 KB: not read at all, still noted
    huge.StudyDescription = "Thorax " * 800
    wide = _instance("study_id")  # IS allows up to 2**31 - 1; PostgreSQL's INTEGER too
    wide.InstanceNumber, wide.SeriesNumber = "999999999999", "-2147483648"
    study = new_uid()
    many = []
    for i in range(9):  # 9 x 16 characters and 8 separators: over the group's 128
        ds = _instance("modality")
        ds.StudyInstanceUID, ds.Modality = study, f"MODALITY_{i:07d}"
        many.append(ds)
    again = []  # more of a left-out modality: noted once for the group, not each time
    for _ in range(3):
        ds = _instance("modality")
        ds.StudyInstanceUID, ds.Modality = study, "MODALITY_0000008"
        again.append(ds)
    for i, ds in enumerate([whole, nul, huge, wide, *many, *again]):
        assert store_file_raw(proc.port, write_part10(ds, tmp_path / f"more-{i}.dcm")) == 0, i
    log = proc.log()
    sql = "SELECT patient_name, series_description FROM instances WHERE sop_instance_uid = :s"
    assert query(proc.index, sql, s=whole.SOPInstanceUID)[0][0] == str(whole.PatientName)
    assert not [line for line in log.splitlines() if whole.SOPInstanceUID in line]
    assert query(proc.index, sql, s=nul.SOPInstanceUID)[0][1] is None
    assert re.search(rf"WARNING .*{nul.SOPInstanceUID}.*SeriesDescription not indexed", log)
    sql = "SELECT study_description FROM instances WHERE sop_instance_uid = :s"
    assert query(proc.index, sql, s=huge.SOPInstanceUID) == [(None,)]
    noted = [ln for ln in log.splitlines() if " WARNING " in ln and huge.SOPInstanceUID in ln]
    assert len(noted) == 1 and "StudyDescription not indexed (over 4 KB)" in noted[0], noted
    sql = "SELECT instance_number, series_number FROM instances WHERE sop_instance_uid = :s"
    assert query(proc.index, sql, s=wide.SOPInstanceUID) == [(None, -(2**31))]
    noted = [ln for ln in log.splitlines() if " WARNING " in ln and wide.SOPInstanceUID in ln]
    assert len(noted) == 1 and "InstanceNumber not indexed (out of range)" in noted[0], noted
    ((modalities,),) = query(
        proc.index, "SELECT modalities FROM groups WHERE study_uid = :s", s=study
    )
    assert modalities == "\\".join(ds.Modality for ds in many[:7])  # 7 x 17 - 1 = 119
    left_out = [line for line in log.splitlines() if " WARNING " in line and study in line]
    assert len(left_out) == 2, left_out
    assert "MODALITY_0000007 left out" in left_out[0], left_out
    assert "MODALITY_0000008 left out" in left_out[1], left_out
