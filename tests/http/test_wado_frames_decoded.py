"""WADO-RS frames of compressed instances sent decoded, to a client that asks for
``application/octet-stream`` in Explicit VR Little Endian (or without a syntax: PS3.18
8.7.3's default), as viewers that cannot decode JPEG, JPEG-LS, JPEG 2000 or RLE do.
dicomweb-client against a running node: each part equals pydicom's own decode of that
frame (``pixel_array(path, index=n - 1)``) byte for byte, single- and multi-frame,
8 and 16 bits, monochrome and colour; as-stored requests are unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import openjpeg
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from dicom_node.synthetic import Patient, iter_ct_series
from tests.http.support import renamed
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

EXPLICIT = (("application/octet-stream", ExplicitVRLittleEndian),)
MF_BIT_SC = "1.2.840.10008.5.1.4.1.1.7.1"  # Multi-frame Single Bit SC Image Storage
# pydicom test files (and pydicom-data's): syntax, frames, bits, photometric
FILES = [
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline, YBR_FULL, 8-bit RGB
    "SC_rgb_dcmtk_+eb+cy+np.dcm",  # JPEG Baseline, YBR_FULL_422
    "JPGLosslessP14SV1_1s_1f_8b.dcm",  # JPEG Lossless SV1, 8-bit monochrome
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless, 16-bit signed
    "emri_small_jpeg_2k_lossless.dcm",  # JPEG 2000 Lossless, 10 frames of 16 bits
    "US1_J2KR.dcm",  # JPEG 2000 Lossless, YBR_RCT colour
    "SC_rgb_rle_2frame.dcm",  # RLE, 2 frames of 8-bit RGB
    "SC_rgb_rle_16bit_2frame.dcm",  # RLE, 2 frames of 16-bit RGB
    "emri_small_RLE.dcm",  # RLE, 10 frames of 16 bits
    "color3d_jpeg_baseline.dcm",  # JPEG Baseline, 120 frames of YBR_FULL_422
]


@pytest.fixture(scope="module")
def client(node: NodeProcess) -> DICOMwebClient:
    return DICOMwebClient(node.http_url + "/dicomweb")


@pytest.fixture(scope="module")
def stored(
    node: NodeProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, Dataset]]:
    """Each test file under new UIDs, stored by C-STORE; its path and dataset."""
    folder = tmp_path_factory.mktemp("decoded")
    made: dict[str, tuple[Path, Dataset]] = {}
    for name in FILES:
        source = get_testdata_file(name)
        if source is None:
            continue
        ds = renamed(pydicom.dcmread(source), "DECODED")
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        assert store_file_raw(node.port, path) == 0, name
        ds = pydicom.dcmread(path)
        made[name] = (path, ds)
    return made


def _ids(ds: Dataset) -> tuple[str, str, str]:
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def _url(node: NodeProcess, ds: Dataset, frames: str) -> str:
    s, se, i = _ids(ds)
    return f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}/frames/{frames}"


def _decoded(path: Path, n: int) -> bytes:
    """pydicom's own decode of frame ``n`` (1-based), as native little-endian bytes."""
    arr = pixel_array(path, index=n - 1)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


@pytest.mark.parametrize("name", FILES)
def test_frames_decoded_equal_pydicoms_decode(
    name: str, stored: dict[str, tuple[Path, Dataset]], client: DICOMwebClient
) -> None:
    if name not in stored:
        pytest.skip(f"test file {name} is not installed")
    path, ds = stored[name]
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    count = int(ds.get("NumberOfFrames") or 1)
    numbers = sorted({count, 1, (count + 1) // 2}, reverse=True)  # last first
    got = client.retrieve_instance_frames(*_ids(ds), numbers, media_types=EXPLICIT)
    want = [_decoded(path, n) for n in numbers]
    assert [len(g) for g in got] == [len(w) for w in want]
    assert got == want
    # No transfer syntax: application/octet-stream's default, Explicit VR LE.
    plain = client.retrieve_instance_frames(
        *_ids(ds), [numbers[0]], media_types=("application/octet-stream",)
    )
    assert plain == want[:1]


def test_decoded_parts_say_what_they_hold(
    stored: dict[str, tuple[Path, Dataset]], node: NodeProcess
) -> None:
    """Each part is labelled Explicit VR LE and describes the decoded pixels: a
    YBR_FULL_422 JPEG decodes to interleaved RGB, as in the instance retrieved
    decompressed (whose dataset says so, and whose frame bytes these are)."""
    name = "SC_rgb_dcmtk_+eb+cy+np.dcm"
    if name not in stored:
        pytest.skip(f"test file {name} is not installed")
    path, ds = stored[name]
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    accept = 'multipart/related; type="application/octet-stream"'
    r = requests.get(_url(node, ds, "1"), headers={"Accept": accept}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert f"transfer-syntax={ExplicitVRLittleEndian}" in r.headers["content-type"]
    head = re.search(rb"\r\n\r\n", r.content)
    assert head
    headers = r.content[: head.start()].decode()
    assert f"Content-Type: application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}" in (
        headers
    )
    assert "PhotometricInterpretation=RGB" in headers and "PlanarConfiguration=0" in headers
    decoded = _decoded(path, 1)
    assert r.content[head.end() :].startswith(decoded + b"\r\n--")
    client = DICOMwebClient(node.http_url + "/dicomweb")
    whole = client.retrieve_instance(
        *_ids(ds), media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert whole.PhotometricInterpretation == "RGB" and whole.PlanarConfiguration == 0
    assert whole.PixelData == decoded


def test_as_stored_requests_are_unchanged(
    stored: dict[str, tuple[Path, Dataset]], client: DICOMwebClient, node: NodeProcess
) -> None:
    """``transfer-syntax=*``, the stored syntax, and the defaults still get the frames as
    stored."""
    name = "emri_small_jpeg_2k_lossless.dcm"
    if name not in stored:
        pytest.skip(f"test file {name} is not installed")
    _, ds = stored[name]
    ts = str(ds.file_meta.TransferSyntaxUID)
    bitstreams = list(generate_frames(ds.PixelData, number_of_frames=10))
    for media_types in (
        (("application/octet-stream", "*"),),
        (("image/jp2", ts),),
        None,
    ):
        got = client.retrieve_instance_frames(*_ids(ds), [3], media_types=media_types)
        assert got == [bitstreams[2]], media_types
    octet = 'multipart/related; type="application/octet-stream"'
    r = requests.get(
        _url(node, ds, "3"), headers={"Accept": f"{octet}; transfer-syntax={ts}"}, timeout=30
    )
    assert r.status_code == 200 and bitstreams[2] + b"\r\n--" in r.content
    # The first range the node can answer wins: as stored before decoded.
    accept = (
        'multipart/related; type="image/jp2", multipart/related; type="application/octet-stream"'
    )
    r = requests.get(_url(node, ds, "3"), headers={"Accept": accept}, timeout=30)
    assert r.status_code == 200 and bitstreams[2] + b"\r\n--" in r.content


def test_neither_as_stored_nor_decoded_is_406_naming_both(
    stored: dict[str, tuple[Path, Dataset]], node: NodeProcess
) -> None:
    name = "SC_rgb_rle_2frame.dcm"
    if name not in stored:
        pytest.skip(f"test file {name} is not installed")
    _, ds = stored[name]
    ts = str(ds.file_meta.TransferSyntaxUID)
    for accept in (
        'multipart/related; type="image/jpeg"',
        'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2',
        "image/png",
    ):
        r = requests.get(_url(node, ds, "1"), headers={"Accept": accept}, timeout=30)
        assert r.status_code == 406, accept
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["available"] == [ts, ExplicitVRLittleEndian]


def test_a_frame_that_cannot_be_decoded(node: NodeProcess, tmp_path: Path) -> None:
    """RLE frames whose second one is cut short: the first alone decodes; the second
    alone answers 422 naming it before the response starts; both in one request cut the
    response after the first part, and the node logs one line saying why."""
    source = get_testdata_file("SC_rgb_rle_2frame.dcm")
    if source is None:
        pytest.skip("pydicom test file SC_rgb_rle_2frame.dcm is not installed")
    ds = renamed(pydicom.dcmread(source), "DECODED")
    frames = list(generate_frames(ds.PixelData, number_of_frames=2))
    ds.PixelData = encapsulate([frames[0], frames[1][: len(frames[1]) // 2]])
    path = tmp_path / "cut.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0
    accept = {"Accept": 'multipart/related; type="application/octet-stream"'}
    logged = len(node.log())
    r = requests.get(_url(node, ds, "1"), headers=accept, timeout=30)
    assert r.status_code == 200 and _decoded(path, 1) + b"\r\n--" in r.content
    r = requests.get(_url(node, ds, "2"), headers=accept, timeout=30)
    assert r.status_code == 422 and r.json()["frame"] == "2", r.text[:300]
    assert "cannot be decoded" in r.json()["detail"]
    try:
        r = requests.get(_url(node, ds, "1,2"), headers=accept, timeout=30)
    except requests.exceptions.ChunkedEncodingError:
        pass
    else:
        raise AssertionError(f"a complete response ({r.status_code}) for a frame not decoded")
    log = node.log()[logged:]
    lines = [line for line in log.splitlines() if "frames of instance " + ds.SOPInstanceUID in line]
    assert len(lines) == 1 and "response cut" in lines[0], lines
    assert "Traceback" not in log  # the decoders' tracebacks are at DEBUG


def _one_bit_jpeg2000(rows: int, cols: int, count: int) -> tuple[Dataset, list[np.ndarray]]:
    """A Multi-frame Single Bit SC instance of ``count`` random 1-bit frames, each
    encoded JPEG 2000 Lossless by openjpeg (as highdicom encodes binary segmentations),
    and its frames."""
    rng = np.random.default_rng(7)
    pixels = [(rng.random((rows, cols)) > 0.5).astype(np.uint8) for _ in range(count)]
    ds = next(iter_ct_series(1, Patient(patient_id="ONEBIT"), rows=8, cols=8, seed=71))
    ds = renamed(ds, "DECODED", MF_BIT_SC)
    for keyword in ("RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, count
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([openjpeg.encode(p, bits_stored=1) for p in pixels])
    ds["PixelData"].VR = "OB"
    return ds, pixels


def test_one_bit_frames_decoded_are_packed_from_a_byte(
    node: NodeProcess, client: DICOMwebClient, tmp_path: Path
) -> None:
    """Three 1-bit frames of 45 x 37 pixels (1665 bits: each frame of native Pixel Data
    starts mid-byte), JPEG 2000: each frame decoded is pydicom's decode of it packed 8
    pixels a byte, low bit first, from a byte boundary, its last byte padded with zero
    bits (as the node sends native 1-bit frames); the instance retrieved decompressed
    holds the three packed one after the other (PS3.5 8.1.1), as pydicom reads them."""
    ds, pixels = _one_bit_jpeg2000(45, 37, 3)
    path = tmp_path / "onebit.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]
    decoded = [pixel_array(path, index=n) for n in range(3)]
    assert all(np.array_equal(d, p) for d, p in zip(decoded, pixels, strict=True))
    got = client.retrieve_instance_frames(*_ids(ds), [3, 1, 2], media_types=EXPLICIT)
    want = [np.packbits(decoded[n - 1].ravel(), bitorder="little").tobytes() for n in (3, 1, 2)]
    assert got == want
    whole = client.retrieve_instance(
        *_ids(ds), media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert whole.BitsAllocated == 1 and len(whole.PixelData) == (3 * 1665 + 7) // 8 + 1
    assert np.array_equal(whole.pixel_array, np.stack(pixels))
