"""Hostile instances retrieved decompressed one frame at a time (dicom_node.http.
decompress): what follows the Pixel Data is re-encoded before the response starts, so
that it answers problem JSON, never a traceback or a cut response; a frame that decodes
to another length than its header says is refused."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
import requests
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from dicom_node.http import decompress, transcode
from dicom_node.http.decompress import MAX_TRAILER, _header, _packed_bits
from dicom_node.http.fragments import UNDEFINED
from dicom_node.http.frames import PixelLayout
from dicom_node.http.frames_decode import Decoded
from dicom_node.http.problem import Problem
from dicom_node.http.wado import Stored
from tests.http.support import image
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2s2xL", group, element, vr, len(value)) + value


def _signatures(item: bytes) -> bytes:
    """A Digital Signatures Sequence (FFFA,FFFA) of one item holding ``item``."""
    value = struct.pack("<HHL", 0xFFFE, 0xE000, len(item)) + item
    return _element(0xFFFA, 0xFFFA, b"SQ", value)


# A b-value (FD: 8 bytes a value) of 4 bytes, as UN: the receive check walks it (its
# length is even and in the file), pydicom cannot convert it to Implicit VR.
UNCONVERTIBLE = _signatures(_element(0x0018, 0x9087, b"UN", bytes(4)))
TOO_LONG = _element(0xFFFC, 0xFFFC, b"OB", bytes(MAX_TRAILER + 2))


@pytest.mark.parametrize(
    ("trailer", "words"),
    [(UNCONVERTIBLE, ("(0018,9087)",)), (TOO_LONG, (str(MAX_TRAILER // 2**20), "MB"))],
    ids=["unconvertible", "too long"],
)
def test_elements_after_the_pixel_data_that_cannot_be_sent_are_a_problem(
    node: NodeProcess, tmp_path: Path, trailer: bytes, words: tuple[str, ...]
) -> None:
    """A JPEG instance followed by an element pydicom cannot re-encode in Implicit VR,
    or by more than MAX_TRAILER bytes of elements, retrieved in Implicit VR Little
    Endian: 422 problem JSON naming what is wrong, before any byte of the instance (the
    unconvertible one escaped as a traceback after all the pixels were sent)."""
    ds = image(JPEGBaseline8Bit, 8, 8)
    out = io.BytesIO()
    Image.new("L", (8, 8), 0).save(out, format="JPEG")
    ds.PixelData = encapsulate([out.getvalue()])
    path = tmp_path / "trailer.dcm"
    ds.save_as(path, enforce_file_format=True)
    with path.open("ab") as fh:
        fh.write(trailer)
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]
    url = (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={ImplicitVRLittleEndian}'
    )
    r = requests.get(url, headers={"Accept": accept}, timeout=60)
    assert r.status_code == 422, (r.status_code, r.content[:300])
    assert r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    assert "after the Pixel Data" in detail and all(w in detail for w in words), detail


def test_one_bit_frames_of_another_length_than_the_header_says_are_refused() -> None:
    """Frames of Bits Allocated 1 (64 bits: 8 bytes each) decoded to 8 bytes, then 3:
    the first is sent, the second is Problem 422 naming it (its bits were packed after
    the first's as if they were all there)."""
    frames = iter([Decoded(bytes(8), "MONOCHROME2"), Decoded(bytes(3), "MONOCHROME2")])
    packed = _packed_bits(frames, 64)
    assert next(packed) == bytes(8)
    with pytest.raises(Problem) as raised:
        next(packed)
    assert raised.value.status == 422 and "frame 2" in raised.value.detail


def test_a_layout_without_its_header_is_a_problem() -> None:
    """The header written before the frames needs the stored header: a layout without
    one is Problem 422 (the response is cut, as for a frame that fails), in every mode
    Python runs in (an ``assert`` there vanished under ``python -O``)."""
    pixels = PixelLayout(JPEGBaseline8Bit, 0, UNDEFINED, 1, 64, None, 8, 8, 1, header=None)
    with pytest.raises(Problem) as raised:
        _header(pixels, ExplicitVRLittleEndian, "MONOCHROME2", 64)
    assert raised.value.status == 422 and "header" in raised.value.detail


def _stored_jpeg(folder: Path, trailer: bytes) -> Stored:
    """An 8 x 8 JPEG Baseline instance followed by ``trailer``, as the index finds it."""
    ds = image(JPEGBaseline8Bit, 8, 8)
    out = io.BytesIO()
    Image.new("L", (8, 8), 0).save(out, format="JPEG")
    ds.PixelData = encapsulate([out.getvalue()])
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    with path.open("ab") as fh:
        fh.write(trailer)
    return Stored(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        str(path),
        ds.file_meta.TransferSyntaxUID,
        8,
        1,
    )


def test_the_elements_after_the_pixel_data_are_re_encoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two JPEG instances, each followed by 10 MB of Data Set Trailing Padding, retrieved
    decompressed: each one's elements after the Pixel Data are re-encoded once, when
    the retrieve is checked, and those are the bytes sent; a response keeps at most
    MAX_TRAILER bytes of them meanwhile, so the second is re-encoded again when sent."""
    padding = _element(0xFFFC, 0xFFFC, b"OB", bytes(10 << 20))
    found = [_stored_jpeg(tmp_path, padding) for _ in range(2)]
    calls: list[str] = []
    real = decompress.trailer

    def counted(inst: Stored, ts: str) -> bytes:
        calls.append(inst.sop)
        return real(inst, ts)

    monkeypatch.setattr(decompress, "trailer", counted)
    wanted = {ImplicitVRLittleEndian}
    trailers = transcode.check_convertible(found, wanted, 1 << 30)
    assert list(trailers) == [found[0]]  # the second would pass MAX_TRAILER kept
    body = b"".join(transcode.multipart(found, wanted, "b0undary", 1 << 30, trailers))
    assert calls == [found[0].sop, found[1].sop, found[1].sop]
    implicit_padding = struct.pack("<HHL", 0xFFFC, 0xFFFC, 10 << 20) + bytes(10 << 20)
    assert trailers[found[0]] == implicit_padding
    assert body.count(implicit_padding + b"\r\n--b0undary") == 2
