"""File names never collide (issue 12, defect 6): an instance whose SOP Instance UID is
literally the hashed name of another's cannot take that other instance's file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node.store.writer import safe_component
from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.store.support import inconsistencies, write_part10
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

pytestmark = pytest.mark.peer


def _instance(sop: str, study: str, series: str, seed: int) -> object:
    ds = next(
        iter_ct_series(1, Patient(patient_id="NAME"), rows=16, cols=16, seed=seed, study_uid=study)
    )
    ds.SOPInstanceUID = sop
    ds.SeriesInstanceUID = series
    return ds


@pytest.mark.parametrize("policy", ["keep_first", "replace"])
def test_uid_equal_to_a_hashed_name_gets_its_own_file(
    node_sqlite: NodeProcess, tmp_path: Path, policy: str
) -> None:
    study, series = new_uid(), new_uid()
    unsafe = f"1.2.3.{new_uid()[-20:]}/.. x"  # characters no file name may hold
    old_name = "x" + hashlib.sha1(unsafe.encode()).hexdigest()  # the former scheme
    crafted = [unsafe, old_name, safe_component(unsafe)[:64]]  # a UID has <= 64
    for i, sop in enumerate(crafted):
        path = write_part10(_instance(sop, study, series, seed=i), tmp_path / f"{i}.dcm")
        assert store_file_raw(node_sqlite.port, path) == 0, sop
    rows = dict(
        query(
            node_sqlite.index,
            "SELECT sop_instance_uid, path FROM instances WHERE study_uid=:s",
            s=study,
        )
    )
    assert set(rows) == set(crafted)
    assert len(set(rows.values())) == 3  # three files
    for sop, path in rows.items():
        assert dcmread(path).SOPInstanceUID == sop
    assert inconsistencies(node_sqlite) == []


def test_names_are_injective() -> None:
    uids = [
        "1.2.3",
        "1.2.3 ",
        "1.2.3\x00",
        ".",
        "..",
        "1.2.abc",
        "x" * 41,
        safe_component("1.2.abc"),
        safe_component("."),
        "1" * 65,
    ]
    names = [safe_component(u) for u in uids]
    assert len(set(names)) == len(uids), names
    assert safe_component("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    assert all(len(n) <= 65 and "/" not in n and n not in (".", "..") for n in names)
