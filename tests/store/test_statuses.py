"""Statuses the docs promise (issue 12, defect 9): missing identifying UIDs answer 0xC220;
values too long for the index are stored, with the index value cut or left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.store.support import associate, inconsistencies, node_config, write_part10
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

pytestmark = pytest.mark.peer


def _ct() -> object:
    return next(
        iter_ct_series(1, Patient(patient_id="STAT"), rows=16, cols=16, study_uid=new_uid())
    )


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_missing_identifying_uid_answers_c220(
    node_each_tweak_mode: NodeProcess, tmp_path: Path, keyword: str
) -> None:
    ds = _ct()
    sop = ds.SOPInstanceUID
    delattr(ds, keyword)
    path = tmp_path / "lacking.dcm"
    write_part10(ds, path, sop)
    assert store_file_raw(node_each_tweak_mode.port, path) == 0xC220
    node = node_each_tweak_mode
    assert query(node.index, "SELECT count(*) FROM instances WHERE sop_instance_uid=:u", u=sop) == [
        (0,)
    ]
    assert inconsistencies(node_each_tweak_mode) == []


@pytest.mark.parametrize("length", [300, 2000, 10_000])
def test_long_patient_name_is_stored(tmp_path: Path, index_url: str, length: int) -> None:
    ds = _ct()
    ds.PatientName = "N" * length
    ds.SeriesDescription = "D" * 3000  # LO: too long for its 64-character column too
    with NodeProcess(tmp_path / "node", node_config(index_url)) as proc:
        for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            assoc = associate(proc.port, ds.SOPClassUID, ts)
            try:
                status = int(assoc.send_c_store(ds).Status)
            finally:
                assoc.release()
            assert status == 0, hex(status)
        ((path, name, desc),) = query(
            proc.index, "SELECT path, patient_name, series_description FROM instances"
        )
        assert dcmread(path).PatientName == "N" * length  # the file keeps it all
        assert name is None or ("N" * length).startswith(name)
        assert desc is None or ("D" * 3000).startswith(desc)
        assert inconsistencies(proc) == []
