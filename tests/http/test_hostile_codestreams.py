"""Compressed frames of the size their instance says that still cost a decoder out of
proportion to it, stored by C-STORE into a running node and read back by WADO-RS
(frames decoded, rendered, retrieved decompressed): a JPEG of many scans (a decoder
passes over the whole image once per scan) and a JPEG 2000 codestream of 1 x 1 pixel
tiles (OpenJPEG allocates about 10 kB per tile)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import requests
from openjpeg import encode
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from dicom_node.http.codestream import MAX_SCANS, jpeg_scans
from dicom_node.http.fragments import HEAD
from tests.http.support import image, reset_peak
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

DECODED = 'multipart/related; type="application/octet-stream"'
NATIVE = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'
DEFLATED = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1.99'
IMPLICIT = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2'


def _scans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan of a JPEG: its DHT segment(s) just before, its SOS
    segment and its entropy-coded data."""
    pos, tables, found = 2, None, []
    while data[pos + 1] != 0xD9:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if data[pos + 1] == 0xC4 and tables is None:
            tables = pos
        if data[pos + 1] == 0xDA:
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
            found.append((pos if tables is None else tables, end))
        if data[pos + 1] != 0xC4:
            tables = None
        pos = end
    return found


def _progressive(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", progressive=True, quality=95)
    return out.getvalue()


def _many_scans(size: int, repeats: int) -> bytes:
    """A progressive JPEG of noise (its own scans over 1 MB), then ``repeats`` times
    the smallest scan of a flat image of the same size, with its Huffman table."""
    noise = _progressive(np.random.default_rng(5).integers(0, 255, (size, size), np.uint8))
    flat = _progressive(np.full((size, size), 128, np.uint8))
    start, end = min(_scans(flat)[1:], key=lambda span: span[1] - span[0])
    return noise[:-2] + flat[start:end] * repeats + b"\xff\xd9"


def _store(node: NodeProcess, ds: Dataset, frame: bytes, path: Path) -> str:
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]
    return (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )


def _problem(r: requests.Response, status: int, word: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    assert word in r.json()["detail"], r.json()


@pytest.fixture(scope="module")
def many_scans() -> bytes:
    data = _many_scans(2048, 2 * MAX_SCANS)
    assert jpeg_scans([data[:HEAD]]) < MAX_SCANS  # past the first MB: counted on the whole
    return data


def test_a_jpeg_of_too_many_scans_is_not_decoded(
    node: NodeProcess, tmp_path: Path, many_scans: bytes
) -> None:
    """200 repeated scans of 16 bytes each: every request decoded them, each a pass
    over 2048 x 2048 pixels (50,000 of them took 129 s of CPU, holding the GIL)."""
    url = _store(node, image(JPEGBaseline8Bit, 2048, 2048), many_scans, tmp_path / "scans.dcm")
    for tail, accept in [
        ("/frames/1", DECODED),
        ("/rendered", "image/png"),
        ("/frames/1/rendered", "image/jpeg"),
        ("", NATIVE),
        ("", DEFLATED),
    ]:
        _problem(requests.get(url + tail, headers={"Accept": accept}, timeout=120), 422, "scans")
    stored = requests.get(url + "/frames/1", headers={"Accept": f"{DECODED}; transfer-syntax=*"})
    assert stored.status_code == 200  # as stored, it is only bytes
    assert many_scans in stored.content


def test_a_jpeg_of_a_few_scans_is_decoded(node: NodeProcess, tmp_path: Path) -> None:
    ds = image(JPEGBaseline8Bit, 512, 512)
    pixels = np.random.default_rng(6).integers(0, 255, (512, 512), np.uint8)
    url = _store(node, ds, _progressive(pixels), tmp_path / "progressive.dcm")
    assert requests.get(url + "/frames/1", headers={"Accept": DECODED}).status_code == 200
    assert requests.get(url + "/rendered", headers={"Accept": "image/png"}).status_code == 200


def _tiled_j2k(rows: int, cols: int, tile: int) -> bytes:
    """A JPEG 2000 codestream of ``rows`` x ``cols``, its SIZ saying tiles of
    ``tile`` x ``tile`` pixels."""
    data = bytearray(encode(np.zeros((rows, cols), np.uint8), codec_format=0))
    assert data[:4] == b"\xff\x4f\xff\x51"
    struct.pack_into(">2L", data, 24, tile, tile)  # XTsiz, YTsiz
    return bytes(data)


def test_a_jpeg_2000_of_tiny_tiles_is_not_decoded(node: NodeProcess, tmp_path: Path) -> None:
    """Tiles of 1 x 1 pixel in a 255 x 256 frame (64 kB decoded): OpenJPEG allocated
    620 MB for their state and decoded it."""
    ds = image(JPEG2000Lossless, 255, 256)
    url = _store(node, ds, _tiled_j2k(255, 256, 1), tmp_path / "tiles.dcm")
    base = reset_peak(node)
    for tail, accept in [("/frames/1", DECODED), ("/rendered", "image/png"), ("", NATIVE)]:
        _problem(requests.get(url + tail, headers={"Accept": accept}, timeout=120), 422, "tiles")
    assert node.peak_rss_kb() - base < 64 * 1024
    ds = image(JPEG2000Lossless, 255, 256)
    url = _store(node, ds, _tiled_j2k(255, 256, 64), tmp_path / "tiles64.dcm")
    assert requests.get(url + "/frames/1", headers={"Accept": DECODED}).status_code == 200


def test_an_instance_that_cannot_be_decoded_is_422_before_a_conversion_starts(
    node: NodeProcess, tmp_path: Path
) -> None:
    """An RLE frame whose one segment ends early: retrieved decompressed, the response
    started (200) and was cut; to Deflated, with a traceback logged."""
    segment = b"\x7f" + bytes(10)  # a literal run of 128 bytes with 10 of them there
    frame = struct.pack("<16L", 1, 64, *[0] * 14) + segment
    url = _store(node, image(RLELossless, 4, 4), frame, tmp_path / "rle.dcm")
    tracebacks = node.log().count("Traceback")
    for accept in (NATIVE, IMPLICIT, DEFLATED):
        _problem(requests.get(url, headers={"Accept": accept}, timeout=60), 422, "decode")
    assert node.log().count("Traceback") == tracebacks
    stored = requests.get(
        url, headers={"Accept": f"{DEFLATED.rsplit(';', 1)[0]}; transfer-syntax=*"}
    )
    assert stored.status_code == 200


def _j2k_precincts(size: int, exponent: int) -> bytes:
    """A JPEG 2000 codestream of ``size`` x ``size``, its COD saying precincts of
    2**exponent x 2**exponent samples at every resolution."""
    data = bytearray(encode(np.zeros((size, size), np.uint8), codec_format=0))
    at = data.index(b"\xff\x52")  # COD: length, Scod, SGcod (4 bytes), levels, ...
    (length,) = struct.unpack_from(">H", data, at + 2)
    levels = data[at + 9]
    data[at + 4] |= 1  # precincts defined
    struct.pack_into(">H", data, at + 2, length + levels + 1)
    data[at + 2 + length : at + 2 + length] = bytes([exponent * 0x11]) * (levels + 1)
    return bytes(data)


def test_a_jpeg_2000_of_tiny_precincts_is_not_decoded(node: NodeProcess, tmp_path: Path) -> None:
    """Precincts of 2 x 2 samples in a 512 x 512 frame (256 kB decoded): OpenJPEG
    allocated 1.6 kB for each of 87,000 (2.3 GB and 11 s of CPU at 2048 x 2048)."""
    url = _store(
        node, image(JPEG2000Lossless, 512, 512), _j2k_precincts(512, 1), tmp_path / "p.dcm"
    )
    base = reset_peak(node)
    for tail, accept in [("/frames/1", DECODED), ("/rendered", "image/png"), ("", DEFLATED)]:
        _problem(
            requests.get(url + tail, headers={"Accept": accept}, timeout=120), 422, "precincts"
        )
    assert node.peak_rss_kb() - base < 32 * 1024
    ds = image(JPEG2000Lossless, 512, 512)
    url = _store(node, ds, _j2k_precincts(512, 5), tmp_path / "p32.dcm")  # 32 x 32: real
    assert requests.get(url + "/frames/1", headers={"Accept": DECODED}).status_code == 200
