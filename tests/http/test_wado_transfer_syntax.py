"""WADO-RS retrieve in a transfer syntax the node does not hold (PS3.18 8.7.3), against
the running node: ``transfer-syntax=*`` or the stored syntax sends the file as stored;
none means Explicit VR Little Endian; Implicit VR LE, Explicit VR LE and Deflated are
converted between each other, and compressed instances decompressed when a pixel
decoder in the node's environment can; anything else answers 406 problem JSON naming
the syntaxes the instance is available in. dicomweb-client's defaults still work."""

from __future__ import annotations

import io
from email import message_from_bytes
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from dicom_node.synthetic import Patient, iter_ct_series
from tests.http.support import renamed
from tests.support.dicom3tools import HAVE_DCIODVFY, dciodvfy
from tests.support.node_process import NodeProcess

DICOM = 'multipart/related; type="application/dicom"'
DICOM_MEDIA = "application/dicom"
MPEG2 = "1.2.840.10008.1.2.4.100"  # no decoder for it in pydicom or its plugins
LOSSY = ("LossyImageCompression", "LossyImageCompressionMethod", "LossyImageCompressionRatio")
NATIVE = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]


def _renamed(ds: Dataset) -> Dataset:
    return renamed(ds, "TSYNTAX")


def _ct(seed: int) -> Dataset:
    patient = Patient(patient_id="TS")
    return _renamed(next(iter_ct_series(1, patient, rows=16, cols=16, seed=seed)))


def _jpeg() -> Dataset:
    path = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")
    if path is None:
        pytest.skip("pydicom test file SC_rgb_jpeg_dcmtk.dcm is not installed")
    return _renamed(pydicom.dcmread(path))


def _undecodable() -> Dataset:
    """An instance labelled MPEG2 (its one fragment is not even video): no decoder."""
    ds = _ct(41)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)], has_bot=True)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = MPEG2
    return ds


@pytest.fixture(scope="module")
def stored(node: NodeProcess) -> dict[str, Dataset]:
    made = {"ct": _ct(40), "jpeg": _jpeg(), "mpeg": _undecodable()}
    client = DICOMwebClient(node.http_url + "/dicomweb")
    for name, ds in made.items():
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        made[name] = pydicom.dcmread(io.BytesIO(out.getvalue()))
        client.store_instances([made[name]])
    return made


def _url(node: NodeProcess, ds: Dataset, level: str = "instance") -> str:
    url = f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}"
    if level in ("series", "instance"):
        url += f"/series/{ds.SeriesInstanceUID}"
    if level == "instance":
        url += f"/instances/{ds.SOPInstanceUID}"
    return url


def _parts(r: requests.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part of a multipart response."""
    msg = message_from_bytes(
        f"Content-Type: {r.headers['content-type']}\r\n\r\n".encode() + r.content
    )
    return [(p["Content-Type"], p.get_payload(decode=True)) for p in msg.get_payload()]


@pytest.mark.parametrize("target", NATIVE)
@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_native_syntaxes_convert_between_each_other(
    stored: dict[str, Dataset], node: NodeProcess, target: str, level: str
) -> None:
    ct = stored["ct"]
    r = requests.get(
        _url(node, ct, level), headers={"Accept": f"{DICOM}; transfer-syntax={target}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    [(media, body)] = _parts(r)
    assert media == f"application/dicom; transfer-syntax={target}"
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == target
    assert got.SOPInstanceUID == ct.SOPInstanceUID
    assert np.array_equal(got.pixel_array, ct.pixel_array)


def test_no_syntax_named_means_explicit_vr_little_endian(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    """JPEG Baseline decompressed (pylibjpeg, in the node's venv), to the pixels pydicom
    decodes; the instance stored Explicit VR LE is sent as stored."""
    jpeg = stored["jpeg"]
    r = requests.get(_url(node, jpeg), headers={"Accept": DICOM}, timeout=10)
    assert r.status_code == 200, r.text
    [(media, body)] = _parts(r)
    assert media == f"application/dicom; transfer-syntax={ExplicitVRLittleEndian}"
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, jpeg.pixel_array)


def test_a_syntax_the_node_cannot_make_is_406_naming_those_it_can(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    jpeg, mpeg = stored["jpeg"], stored["mpeg"]
    j2k = "1.2.840.10008.1.2.4.90"
    r = requests.get(_url(node, jpeg), headers={"Accept": f"{DICOM}; transfer-syntax={j2k}"})
    assert r.status_code == 406 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["available"] == [JPEGBaseline8Bit, *NATIVE]
    assert JPEGBaseline8Bit in r.json()["detail"]
    # No decoder for MPEG2: only as stored, and that is said before any byte is sent.
    for accept in (DICOM, f"{DICOM}; transfer-syntax={ImplicitVRLittleEndian}"):
        r = requests.get(_url(node, mpeg), headers={"Accept": accept}, timeout=10)
        assert r.status_code == 406, accept
        assert r.json()["available"] == [MPEG2]
    r = requests.get(_url(node, mpeg), headers={"Accept": f"{DICOM}; transfer-syntax=*"})
    assert r.status_code == 200
    assert _parts(r)[0][0] == f"application/dicom; transfer-syntax={MPEG2}"
    r = requests.get(_url(node, mpeg), headers={"Accept": f"{DICOM}; transfer-syntax={MPEG2}"})
    assert r.status_code == 200


def test_several_syntaxes_accepted_the_stored_one_wins(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    jpeg = stored["jpeg"]
    accept = (
        f"{DICOM}; transfer-syntax={ImplicitVRLittleEndian}, "
        f"{DICOM}; transfer-syntax={JPEGBaseline8Bit}"
    )
    r = requests.get(_url(node, jpeg), headers={"Accept": accept}, timeout=10)
    assert r.status_code == 200
    assert _parts(r)[0][0] == f"application/dicom; transfer-syntax={JPEGBaseline8Bit}"


def test_dicomweb_client_defaults(stored: dict[str, Dataset], node: NodeProcess) -> None:
    """retrieve_study and retrieve_series ask for application/dicom with no syntax
    (Explicit VR LE); retrieve_instance asks for transfer-syntax=* (as stored)."""
    client = DICOMwebClient(node.http_url + "/dicomweb")
    jpeg = stored["jpeg"]
    [study] = client.retrieve_study(jpeg.StudyInstanceUID)
    [series] = client.retrieve_series(jpeg.StudyInstanceUID, jpeg.SeriesInstanceUID)
    for ds in (study, series):
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert np.array_equal(ds.pixel_array, jpeg.pixel_array)
    one = client.retrieve_instance(
        jpeg.StudyInstanceUID, jpeg.SeriesInstanceUID, jpeg.SOPInstanceUID
    )
    assert one.file_meta.TransferSyntaxUID == JPEGBaseline8Bit and one == jpeg


def test_frames_in_a_syntax_the_node_does_not_hold_name_what_it_has(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    jpeg = stored["jpeg"]
    jp2 = 'multipart/related; type="image/jp2"'
    r = requests.get(_url(node, jpeg) + "/frames/1", headers={"Accept": jp2}, timeout=10)
    assert r.status_code == 406
    assert r.json()["available"] == [JPEGBaseline8Bit, ExplicitVRLittleEndian]


@pytest.mark.skipif(not HAVE_DCIODVFY, reason="dciodvfy (dicom3tools) is not installed")
@pytest.mark.parametrize("target", NATIVE)
@pytest.mark.parametrize("name", ["SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_rle_16bit_2frame.dcm"])
def test_a_decompressed_instance_is_pydicoms_decode_of_it(
    node: NodeProcess, tmp_path: Path, name: str, target: str
) -> None:
    """JPEG Baseline YBR_FULL_422 and 2-frame 16-bit RLE RGB, each with an Extended
    Offset Table, the Encapsulated Pixel Data Value Total Length and an element after
    its Pixel Data, retrieved decompressed in Explicit VR LE (also by dicomweb-client),
    Implicit VR LE (both one frame at a time) and Deflated (in memory): pydicom's
    decode of the stored pixels, labelled as pydicom's decompress labels them, under the
    same SOP Instance UID, the trailing element kept, none of the elements only
    encapsulated Pixel Data may have (PS3.3 C.7.6.3; they were kept), Lossy Image
    Compression "01" and its method for the JPEG (its own removed: C.7.6.1.1.5), and no
    dciodvfy error that the stored file does not have."""
    source = get_testdata_file(name)
    if source is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    ds = _renamed(pydicom.dcmread(source))
    ds.DataSetTrailingPadding = b"\0" * 6
    frames = list(generate_frames(ds.PixelData, number_of_frames=ds.get("NumberOfFrames", 1)))
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(
        frames
    )
    ds.EncapsulatedPixelDataValueTotalLength = sum(len(f) + len(f) % 2 for f in frames)
    for keyword in LOSSY:
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(tmp_path / "stored.dcm", enforce_file_format=True)
    stored = pydicom.dcmread(tmp_path / "stored.dcm")
    client = DICOMwebClient(node.http_url + "/dicomweb")
    client.store_instances([stored])
    r = requests.get(
        _url(node, ds), headers={"Accept": f"{DICOM}; transfer-syntax={target}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    (tmp_path / "got.dcm").write_bytes(_parts(r)[0][1])  # the node's bytes, for dciodvfy
    got = pydicom.dcmread(tmp_path / "got.dcm")
    if target == ExplicitVRLittleEndian:  # what dicomweb-client can ask for
        ids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        peer = client.retrieve_instance(*ids, media_types=((DICOM_MEDIA, target),))
        assert peer.PixelData == got.PixelData
    assert got.file_meta.TransferSyntaxUID == target
    reference = pydicom.dcmread(tmp_path / "stored.dcm")
    reference.decompress(generate_instance_uid=False)
    assert got.SOPInstanceUID == ds.SOPInstanceUID
    assert got.PhotometricInterpretation == reference.PhotometricInterpretation
    assert np.array_equal(got.pixel_array, stored.pixel_array)
    assert got.DataSetTrailingPadding == ds.DataSetTrailingPadding
    assert not {0x7FE00001, 0x7FE00002, 0x7FE00003} & set(got.keys())
    if ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit:
        assert (got.LossyImageCompression, got.LossyImageCompressionMethod) == ("01", "ISO_10918_1")
    else:
        assert not set(LOSSY) & set(got.dir())
    if target == DeflatedExplicitVRLittleEndian:  # dciodvfy reads no Deflated file
        got.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        got.save_as(tmp_path / "got.dcm", enforce_file_format=True)
    errors, _ = dciodvfy(tmp_path / "got.dcm")
    assert set(errors) <= set(dciodvfy(tmp_path / "stored.dcm")[0]), errors
