"""Orthanc's DICOMweb plugin with the node configured as a DICOMweb server: Orthanc sends a
study by STOW-RS, the node processes it, and Orthanc finds (QIDO-RS) and retrieves
(WADO-RS) the node's results into its own store."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from dicom_node.synthetic import Patient, make_cr, new_uid, write_files
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.orthanc import Orthanc, dicomweb_plugin
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(dicomweb_plugin() is None, reason="orthanc-dicomweb not installed"),
]


def test_orthanc_stows_to_the_node_and_retrieves_its_results(tmp_path: Path) -> None:
    cr = make_cr(Patient(patient_id="ORTHWEB"), rows=256, cols=256, seed=91, study_uid=new_uid())
    [path] = write_files([cr], tmp_path / "cr")
    study = cr.StudyInstanceUID
    node = NodeProcess(
        tmp_path / "node", {"http": {"web_source": {"ae_title": "ORTHANCWEB", "quiet_seconds": 1}}}
    )
    with node:
        servers = {"node": {"Url": f"{node.http_url}/dicomweb/"}}
        orthanc = Orthanc(
            tmp_path / "orthanc",
            dicomweb=True,
            extra_config={
                "DicomWeb": {
                    "Enable": True,
                    "Root": "/dicom-web/",
                    "EnableWado": True,
                    "Ssl": False,
                    "Servers": servers,
                }
            },
        )
        with orthanc:
            orthanc.upload(path)
            [study_id] = orthanc.find("Study", {"StudyInstanceUID": study})
            stow = orthanc.post("/dicom-web/servers/node/stow", json={"Resources": [study_id]})
            assert stow is None or "error" not in str(stow).lower()
            rows = query(
                node.data_dir,
                "SELECT called_ae, path FROM instances WHERE sop_instance_uid = :s",
                s=cr.SOPInstanceUID,
            )
            assert rows and rows[0][0] == "ORTHANCWEB"
            assert pydicom.dcmread(rows[0][1]) == pydicom.dcmread(path)
            wait_until(
                lambda: (
                    query(node.data_dir, "SELECT state FROM jobs WHERE study_uid = :s", s=study)
                    == [("done",)]
                ),
                timeout=120,
            )
            results = {
                r[0]
                for r in query(
                    node.data_dir,
                    "SELECT o.sop_instance_uid FROM "
                    "job_outputs o JOIN jobs j ON j.id = o.job_id "
                    "WHERE j.study_uid = :s",
                    s=study,
                )
            }
            assert results
            # Orthanc asks the node what the study holds now (QIDO-RS through Orthanc).
            found = orthanc.post(
                "/dicom-web/servers/node/qido", json={"Uri": f"/studies/{study}/instances"}
            )
            # Orthanc answers in its own JSON shape: {"00080018": {"Value": "...", ...}}
            sops = {i["00080018"]["Value"] for i in found}
            assert sops == {cr.SOPInstanceUID, *results}
            # ... and retrieves it (WADO-RS) into its own store.
            orthanc.post(
                "/dicom-web/servers/node/retrieve",
                json={"Resources": [{"Study": study}]},
                timeout=120,
            )
            wait_until(
                lambda: all(orthanc.find_instance(s) for s in results),
                30,
                interval=0.2,
                describe=lambda: (
                    "not retrieved into Orthanc: "
                    + ", ".join(s for s in results if not orthanc.find_instance(s))
                ),
            )
            for sop in results:
                oid = orthanc.find_instance(sop)
                assert oid, f"result {sop} not retrieved into Orthanc"
                assert (
                    orthanc.instance_file(oid)
                    == Path(
                        query(
                            node.data_dir,
                            "SELECT path FROM job_outputs WHERE sop_instance_uid = :s",
                            s=sop,
                        )[0][0]
                    ).read_bytes()
                )
