"""Delivery into a real Orthanc (Debian package): REST, STOW-RS (DICOMweb plugin), C-STORE."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node.delivery import deliver
from dicom_node.settings.destinations import DestinationAdapter
from tests.support.orthanc import Orthanc, dicomweb_plugin
from tests.support.ports import free_port
from tests.support.storescp import StoreSCP

pytestmark = pytest.mark.peer

USER, PASSWORD = "node", "s3cret"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    with Orthanc(
        tmp_path_factory.mktemp("orthanc"), aet="ORTHANC", users={USER: PASSWORD}
    ) as orthanc:
        yield orthanc


def uid_of(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def orthanc_dest(url: str, password: str = PASSWORD):
    return DestinationAdapter.validate_python(
        {
            "name": "orthanc",
            "kind": "orthanc",
            "url": url,
            "timeout": 10,
            "auth": {"username": USER, "password": password},
        }
    )


def test_rest_delivery_then_resend_does_not_duplicate(pacs: Orthanc, files) -> None:
    batch = files["ct"]
    before = pacs.instance_count()
    report = deliver(orthanc_dest(pacs.url), batch)
    assert report.ok, report.summary()
    assert [(o.outcome, o.code) for o in report.outcomes] == [("delivered", 200)] * 2
    assert report.detail["already_stored"] == 0
    for path in batch:
        oid = pacs.find_instance(uid_of(path))
        assert oid is not None
        assert pacs.instance_file(oid) == path.read_bytes()
    assert pacs.instance_count() == before + 2
    again = deliver(orthanc_dest(pacs.url), batch)
    assert again.ok and again.detail["already_stored"] == 2
    assert pacs.instance_count() == before + 2


def test_rest_wrong_password_is_permanent(pacs: Orthanc, files) -> None:
    report = deliver(orthanc_dest(pacs.url, password="wrong"), files["cr"])
    assert report.status == "permanent"
    assert report.outcomes[0].code == 401 and "HTTP 401" in (report.outcomes[0].error or "")
    assert pacs.find_instance(uid_of(files["cr"][0])) is None


def test_rest_orthanc_down_is_transient(files) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    report = deliver(orthanc_dest(url), files["ct"])
    assert report.status == "transient" and report.error_kind == "connection_failed"
    assert [o.outcome for o in report.outcomes] == ["transient", "transient"]


def test_dimse_delivery_into_orthanc(pacs: Orthanc, files) -> None:
    dest = DestinationAdapter.validate_python(
        {
            "name": "ORTHANC",
            "kind": "dimse",
            "ae_title": "ORTHANC",
            "host": "127.0.0.1",
            "port": pacs.dicom_port,
        }
    )
    report = deliver(dest, files["rle"])
    assert report.ok, report.summary()
    oid = pacs.find_instance(uid_of(files["rle"][0]))
    assert oid is not None
    stored = dcmread(io.BytesIO(pacs.instance_file(oid)))
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"  # sent as is
    assert pacs.metadata(oid, "RemoteAET") == "DICOM_NODE"
    assert pacs.metadata(oid, "CalledAET") == "ORTHANC"
    count = pacs.instance_count()
    again = deliver(dest, files["rle"])  # a re-send replaces, never duplicates
    assert again.ok and pacs.instance_count() == count


@pytest.mark.skipif(dicomweb_plugin() is None, reason="orthanc-dicomweb is not installed")
def test_stowrs_delivery_into_orthanc(pacs: Orthanc, files) -> None:
    assert pacs.has_dicomweb
    dest = DestinationAdapter.validate_python(
        {
            "name": "web",
            "kind": "stowrs",
            "url": pacs.dicomweb_url,
            "timeout": 20,
            "auth": {"username": USER, "password": PASSWORD},
        }
    )
    batch = files["cr"] + files["implicit"]
    before = pacs.instance_count()
    report = deliver(dest, batch)
    assert report.ok, report.summary()
    for path in batch:
        assert pacs.find_instance(uid_of(path)) is not None
    assert pacs.instance_count() == before + 2
    again = deliver(dest, batch)
    assert again.ok, again.summary()
    assert pacs.instance_count() == before + 2
    wrong = dest.model_copy(update={"auth": None})
    denied = deliver(wrong, batch)
    assert denied.status == "permanent" and denied.outcomes[0].code == 401


def test_fixture_orthanc_pushes_to_a_registered_modality(
    pacs: Orthanc, files, tmp_path: Path
) -> None:
    """What the end-to-end tests rely on: Orthanc C-STOREs a study to a modality."""
    with StoreSCP(tmp_path / "scp", ae_title="NODE") as scp:
        pacs.add_modality("node", "NODE", "127.0.0.1", scp.port)
        oid = pacs.upload(files["implicit"][0])["ID"]
        answer = pacs.store_to_modality("node", oid)
        received = scp.wait_for_files(1)
        assert answer["InstancesCount"] == 1 and answer["FailedInstancesCount"] == 0
        assert "Calling Application Name:    ORTHANC" in scp.log_text()
    assert uid_of(received[0]) == uid_of(files["implicit"][0])
