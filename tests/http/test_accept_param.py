"""The ``accept`` query parameter (PS3.18 8.3.3.1) on every DICOMweb resource that
answers a payload, against the running node: retrieve (its transfer-syntax too),
metadata, bulk data, frames, renderings, thumbnails and QIDO-RS searches. Its media
types are tried before the Accept header's, each list by its q-values, then the header's
(8.7.8.1); a malformed value gets 400 problem JSON naming ``accept``, an Acceptable set
the node cannot answer 406."""

from __future__ import annotations

from email import message_from_bytes

import pydicom
import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.http.support import native_multiframe, stored_by_stow, uids
from tests.support.node_process import NodeProcess

PNG, JPEG, PROBLEM = "image/png", "image/jpeg", "application/problem+json"
JSON = "application/dicom+json"
DICOM = 'multipart/related; type="application/dicom"'
OCTET = 'multipart/related; type="application/octet-stream"'


@pytest.fixture(scope="module")
def stored(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """A 32 x 32 CT slice in Explicit VR Little Endian and a native multi-frame image."""
    patient = Patient(patient_id="ACCEPTQ")
    ct = next(iter_ct_series(1, patient, rows=32, cols=32, seed=151, study_uid=new_uid()))
    made = {"ct": ct, "mf": native_multiframe(2, 16, "ACCEPTQ")}
    stored_by_stow(node, tmp_path_factory.mktemp("accept"), made)
    return made


def _instance(node: NodeProcess, ds: Dataset) -> str:
    s, se, i = uids(ds)
    return f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}"


def _get(url: str, header: str | None, accept: str | list[str] | None = None) -> requests.Response:
    """GET ``url`` with ``header`` as its Accept header and ``accept`` as its query
    parameter (percent-encoded by requests: a ``+`` stays a ``+``)."""
    params = {"accept": accept} if accept is not None else None
    headers = {"Accept": header} if header else None
    return requests.get(url, params=params, headers=headers, timeout=30)


def _parts(r: requests.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part of a multipart response."""
    msg = message_from_bytes(
        f"Content-Type: {r.headers['content-type']}\r\n\r\n".encode() + r.content
    )
    return [(p["Content-Type"], p.get_payload(decode=True)) for p in msg.get_payload()]


def _syntax(content_type: str) -> str:
    """The transfer-syntax parameter of a part's Content-Type."""
    [value] = [p.split("=", 1)[1] for p in content_type.split(";") if "transfer-syntax" in p]
    return value.strip()


def test_retrieve_takes_media_type_and_transfer_syntax_from_the_parameter(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    """The parameter's transfer syntax wins over the header's ``*`` (as stored), at each
    level; with a header that allows no DICOM at all the parameter alone is enough."""
    ct = stored["ct"]
    s, se, _ = uids(ct)
    implicit = f"{DICOM}; transfer-syntax={ImplicitVRLittleEndian}"
    for url in (
        f"{node.http_url}/dicomweb/studies/{s}",
        f"{node.http_url}/dicomweb/studies/{s}/series/{se}",
        _instance(node, ct),
    ):
        for header in (f"{DICOM}; transfer-syntax=*", PNG, None):
            r = _get(url, header, implicit)
            assert r.status_code == 200, (url, header, r.text[:300])
            [(media, body)] = _parts(r)
            assert _syntax(media) == ImplicitVRLittleEndian, media
            got = pydicom.dcmread(pydicom.filebase.DicomBytesIO(body))
            assert got.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    # Without one, multipart/related; type="application/dicom" means Explicit VR LE.
    r = _get(_instance(node, ct), f"{DICOM}; transfer-syntax={ImplicitVRLittleEndian}", DICOM)
    [(media, _)] = _parts(r)
    assert _syntax(media) == ExplicitVRLittleEndian, media


def test_metadata_and_bulk_data_take_the_parameter(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    url = _instance(node, stored["ct"])
    assert _get(url + "/metadata", PNG).status_code == 406
    r = _get(url + "/metadata", PNG, JSON)
    assert r.status_code == 200, r.text[:300]
    assert r.json()[0]["00100020"]["Value"] == ["ACCEPTQ"]
    assert _get(url + "/metadata", PNG, f"{JSON}; charset=utf-8").status_code == 200
    # The node writes UTF-8 only: another charset is a media type it does not support.
    r = _get(url + "/metadata", PNG, f"{JSON}; charset=ISO-8859-1")
    assert r.status_code == 406 and r.headers["content-type"] == PROBLEM, r.text[:300]
    bulk = url + "/bulk/7FE00010"
    r = _get(bulk, PNG)
    assert r.status_code == 406 and r.headers["content-type"] == PROBLEM, r.text[:300]
    r = _get(bulk, PNG, OCTET)
    assert r.status_code == 200, r.text[:300]
    [(media, body)] = _parts(r)
    assert media.startswith("application/octet-stream")
    assert body == stored["ct"].PixelData


def test_frames_take_the_parameter(stored: dict[str, Dataset], node: NodeProcess) -> None:
    url = _instance(node, stored["mf"]) + "/frames/2"
    jpeg_only = 'multipart/related; type="image/jpeg"'
    assert _get(url, jpeg_only).status_code == 406  # native frames: no JPEG
    r = _get(url, jpeg_only, OCTET)
    assert r.status_code == 200, r.text[:300]
    [(media, body)] = _parts(r)
    assert media.startswith("application/octet-stream")
    assert body == stored["mf"].PixelData[512:]


def test_qido_takes_the_parameter(stored: dict[str, Dataset], node: NodeProcess) -> None:
    """Before, ``accept`` was read as a matching key and answered 400 (not a keyword)."""
    url = f"{node.http_url}/dicomweb/studies"
    study = stored["ct"].StudyInstanceUID
    for header in (JSON, PNG, None):
        r = requests.get(
            url,
            params={"accept": JSON, "StudyInstanceUID": study},
            headers={"Accept": header} if header else None,
            timeout=30,
        )
        assert r.status_code == 200, (header, r.text[:300])
        assert [x["0020000D"]["Value"] for x in r.json()] == [[study]]
        assert "Warning" not in r.headers
    series = f"{node.http_url}/dicomweb/studies/{study}/series"
    assert _get(series, PNG).status_code == 406
    assert _get(series, PNG, "application/json").status_code == 200
    # A parameter the node cannot answer gives way to the header (8.7.8.1 step 3).
    assert _get(series, JSON, PNG).status_code == 200
    assert _get(series, PNG, PNG).status_code == 406


def test_q_values_order_the_parameter_and_the_header(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    """Each list by its weights (a tie: in order); q=0 is not acceptable; the parameter
    before the header whatever their weights."""
    url = _instance(node, stored["ct"]) + "/rendered"
    cases = [
        (None, f"{JPEG};q=0.5, {PNG}", PNG),
        (None, f"{PNG};q=0.2, {JPEG};q=0.9", JPEG),
        (None, f"{PNG};q=0, */*", JPEG),
        (f"{JPEG};q=0.5,{PNG}", JPEG, PNG),
        (f"{PNG};q=0.1", f"{JPEG}", PNG),  # the parameter first, whatever its weight
        (f"{PNG};q=0", PNG, PNG),  # q=0: not from the parameter; the header's PNG
        ("image/gif", PNG, PNG),  # unsupported: the header's
        (["image/gif", f"{PNG};q=0.9"], JPEG, PNG),  # repeated: one list
    ]
    for accept, header, media in cases:
        r = _get(url, header, accept)
        assert r.status_code == 200, (accept, header, r.text[:300])
        assert r.headers["content-type"] == media, (accept, header)
    assert _get(url, "image/gif", "image/gif").status_code == 406
    assert _get(url, f"{PNG};q=0", f"{PNG};q=0").status_code == 406


@pytest.mark.parametrize(
    "value",
    [
        "",
        ",",
        "image/*",
        "*/*",
        "jpeg",
        "image/png;q=2",
        "image/png;q=0.5x",
        "image/png junk",
        "application/dicom json",  # what an unescaped + in a URL's query becomes
        f"{JSON},{PNG}",  # DICOM and rendered media types together (8.3.3.1)
    ],
)
def test_a_malformed_parameter_is_400_naming_it_on_every_resource(
    stored: dict[str, Dataset], node: NodeProcess, value: str
) -> None:
    url = _instance(node, stored["mf"])
    study = stored["mf"].StudyInstanceUID
    for target in (
        url,
        url + "/metadata",
        url + "/bulk/7FE00010",
        url + "/frames/1",
        url + "/frames/1/rendered",
        url + "/thumbnail",
        f"{node.http_url}/dicomweb/studies/{study}",
        f"{node.http_url}/dicomweb/studies?StudyInstanceUID={study}",
    ):
        r = _get(target, None, value)
        assert r.status_code == 400, (target, value, r.status_code, r.text[:300])
        assert r.headers["content-type"] == PROBLEM
        body = r.json()
        assert body["parameter"] == "accept" and "accept" in body["detail"], (target, body)
