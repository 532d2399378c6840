"""WADO-RS memory per request against the running node (dicomweb-client as the peer): a
large compressed frame is sent from the file in pieces, never held whole; a compressed
multi-frame instance retrieved decompressed is decoded and sent one frame at a time.
The node's peak RSS (VmHWM, reset through /proc/PID/clear_refs) grows by far less than
the frame, or the instance decoded, while the bytes come back as pydicom reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from tests.http.support import image, reset_peak
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

MB = 1024  # kB


def _stored(node: NodeProcess, ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]


def test_a_large_compressed_frame_is_streamed_from_the_file(
    node: NodeProcess, tmp_path: Path
) -> None:
    """One 128 MB frame of JPEG 2000 (its bytes need not decode: it is sent as stored)
    in 512 fragments, asked for as stored (transfer-syntax=*): the frame comes back byte
    for byte while the node's peak RSS grows by far less than the frame (its fragments
    were joined, then the part copied into a batch: +258 MB)."""
    frame = np.random.default_rng(11).bytes(128 << 20)
    ds = image(JPEG2000Lossless, 8192, 8192, bits=16)
    ds.PixelData = encapsulate([frame], fragments_per_frame=512)
    ds["PixelData"].VR = "OB"
    _stored(node, ds, tmp_path / "large.dcm")
    del ds.PixelData
    client = DICOMwebClient(node.http_url + "/dicomweb")
    before = reset_peak(node)
    got = client.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        [1],
        media_types=(("application/octet-stream", "*"),),
    )
    grown = node.peak_rss_kb() - before
    assert got == [frame]
    assert grown < 32 * MB, f"peak RSS grew by {grown // MB} MB serving a 128 MB frame"


def test_a_large_frame_is_checked_from_its_first_bytes(node: NodeProcess, tmp_path: Path) -> None:
    """One 128 MB frame of JPEG 2000 in 512 fragments whose codestream declares no image
    size, asked for decompressed and rendered: 422 each, from the frame's first bytes
    (the size check before any decoder runs read the frame whole: +256 MB), so the
    node's peak RSS grows by far less than the frame."""
    ds = image(JPEG2000Lossless, 8192, 8192, bits=16)
    ds.PixelData = encapsulate([bytes(128 << 20)], fragments_per_frame=512)
    ds["PixelData"].VR = "OB"
    _stored(node, ds, tmp_path / "unsized.dcm")
    del ds.PixelData
    url = (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={ExplicitVRLittleEndian}'
    )
    before = reset_peak(node)
    for r in (
        requests.get(url, headers={"Accept": accept}, timeout=120),
        requests.get(url + "/rendered", timeout=120),
    ):
        assert r.status_code == 422, (r.status_code, r.text[:300])
        assert "declares no image size" in r.json()["detail"]
    grown = node.peak_rss_kb() - before
    assert grown < 32 * MB, f"peak RSS grew by {grown // MB} MB checking a 128 MB frame"


def _rle_multiframe(frames: int, size: int) -> Dataset:
    """An RLE Lossless multi-frame of ``frames`` 16-bit frames of ``size``² pixels
    (four different frames, repeated), encoded by pydicom."""
    four = image(RLELossless, size, size, bits=16)
    four.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    four.NumberOfFrames = 4
    base = np.arange(size * size, dtype=np.uint16).reshape(size, size)
    four.PixelData = b"".join((base * (k + 1)).tobytes() for k in range(4))
    four.compress(RLELossless, encoding_plugin="pylibjpeg")
    encoded = list(generate_frames(four.PixelData, number_of_frames=4))
    four.PixelData = encapsulate([encoded[k % 4] for k in range(frames)])
    four.NumberOfFrames = frames
    return four


def test_a_compressed_multiframe_is_decompressed_one_frame_at_a_time(
    node: NodeProcess, tmp_path: Path
) -> None:
    """64 RLE frames of 1024² x 16 bits (128 MB decoded) retrieved in Explicit VR Little
    Endian: the instance comes back with pydicom's decode of its pixels, under its own
    SOP Instance UID, while the node's peak RSS grows by about a few frames (the
    instance was decoded whole, then encoded whole: +640 MB)."""
    ds = _rle_multiframe(64, 1024)
    path = tmp_path / "rle.dcm"
    _stored(node, ds, path)
    expected = pydicom.dcmread(path).pixel_array
    client = DICOMwebClient(node.http_url + "/dicomweb")
    before = reset_peak(node)
    got = client.retrieve_instance(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        media_types=(("application/dicom", ExplicitVRLittleEndian),),
    )
    grown = node.peak_rss_kb() - before
    assert grown < 48 * MB, f"peak RSS grew by {grown // MB} MB decompressing 128 MB"
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert got.SOPInstanceUID == ds.SOPInstanceUID and got.NumberOfFrames == 64
    assert np.array_equal(got.pixel_array, expected)
