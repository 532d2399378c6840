"""WADO-RS attacked as an outsider would (issue 15, in the spirit of issue 12): every
stored file is attacker-controlled (it passed the receive checks), so reads of it must
answer problem JSON, never a 500, never unbounded memory. Each test stores a crafted
instance by C-STORE into a real node and asserts statuses, bytes and peak RSS."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from tests.http.support import MF_BYTE_SC, image, reset_peak
from tests.support.node_process import NodeProcess, running_node
from tests.support.scu import store_file_raw

MB = 1024  # kB


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 0).save(out, format="JPEG", quality=10)
    return out.getvalue()


def _store(node: NodeProcess, ds: Dataset, path: Path) -> Dataset:
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]
    return ds


def _url(node: NodeProcess, ds: Dataset, tail: str = "") -> str:
    return (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}{tail}"
    )


def _problem(r: requests.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/problem+json"
    for word in words:
        assert word in r.json()["detail"], r.json()


# -- decompression bombs -----------------------------------------------------------------


def test_a_jpeg_larger_than_its_header_says_is_never_decoded(
    node: NodeProcess, tmp_path: Path
) -> None:
    """3 MB of JPEG whose SOF says 16000 x 16000 (256 MB decoded) in an instance whose
    Rows and Columns say 8 x 8: the header's size passes any limit, so the decoder
    would allocate what the codestream says (pydicom's decompress then fails to reshape:
    +1 GB peak in-process). Retrieving it converted, or rendered, must answer 422 naming
    the mismatch without decoding (peak RSS)."""
    ds = image(JPEGBaseline8Bit, 8, 8)
    ds.PixelData = encapsulate([_jpeg(16000, 16000)])
    _store(node, ds, tmp_path / "jbomb.dcm")
    before = reset_peak(node)
    accept = 'multipart/related; type="application/dicom"'
    r = requests.get(_url(node, ds), headers={"Accept": accept}, timeout=120)
    _problem(r, 422, "16000")
    r = requests.get(_url(node, ds, "/rendered"), timeout=120)
    _problem(r, 422, "16000")
    octet = 'multipart/related; type="application/octet-stream"'
    r = requests.get(_url(node, ds, "/frames/1"), headers={"Accept": octet}, timeout=120)
    _problem(r, 422, "16000")
    grown = node.peak_rss_kb() - before
    assert grown < 64 * MB, f"peak RSS grew by {grown // MB} MB"
    # As stored it is still served (its Pixel Data byte for byte; the File Meta is the
    # node's own).
    r = requests.get(_url(node, ds), headers={"Accept": accept + "; transfer-syntax=*"}, timeout=60)
    assert r.status_code == 200
    assert (tmp_path / "jbomb.dcm").read_bytes()[-(2**20) :] in r.content


def test_bulk_data_of_a_deflated_bomb_is_refused_past_the_limit(
    node: NodeProcess, tmp_path: Path
) -> None:
    """A Deflated instance whose attributes honestly say 3 frames of 16384 x 16384 x 16
    bits (1.5 GB, stored as about 1.5 MB): its bulk Pixel Data, rendered frame and
    metadata must not inflate it whole: bulk data is refused naming
    http.max_decoded_mb (1024 MB), the rendered frame likewise."""
    ds = image(ExplicitVRLittleEndian, 16384, 16384, frames=3, bits=16)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    _write_deflated(ds, 3 * 16384 * 16384 * 2, path)
    assert path.stat().st_size < 8 * 2**20
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]
    before = reset_peak(node)
    r = requests.get(_url(node, ds, "/bulk/7FE00010"), timeout=120)
    _problem(r, 406, "http.max_decoded_mb")
    r = requests.get(_url(node, ds, "/frames/1/rendered"), timeout=120)
    assert r.status_code in (400, 406), r.status_code
    r = requests.get(_url(node, ds, "/metadata"), timeout=60)
    assert r.status_code == 200
    grown = node.peak_rss_kb() - before
    assert grown < 64 * MB, f"peak RSS grew by {grown // MB} MB"


def _write_deflated(ds: Dataset, pixel_bytes: int, path: Path) -> None:
    """``ds`` as a Deflated Part 10 file whose Pixel Data is ``pixel_bytes`` zeros,
    deflated in pieces (never held whole here either)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    body = ds.copy()
    if "PixelData" in body:
        del body.PixelData
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, body)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as fh:
        fh.write(bytes(128) + b"DICM" + meta.getvalue())
        fh.write(comp.compress(out.getvalue()))
        fh.write(comp.compress(b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<L", pixel_bytes)))
        zeros = bytes(16 * 2**20)
        left = pixel_bytes
        while left:
            n = min(left, len(zeros))
            fh.write(comp.compress(zeros[:n]))
            left -= n
        fh.write(comp.flush())


# -- offset tables and attributes that lie ------------------------------------------------


def _jpeg_frames(node: NodeProcess, tmp_path: Path, frames: int, name: str) -> Dataset:
    ds = image(JPEGBaseline8Bit, 16, 16, frames=frames)
    ds.PixelData = encapsulate([_jpeg(16, 16) for _ in range(frames)], has_bot=False)
    return ds


def test_an_extended_offset_table_that_lies_is_a_problem(node: NodeProcess, tmp_path: Path) -> None:
    """Extended Offset Table entries the receive path does not check: a length of
    2^64 - 1 (an OverflowError reading it was a 500), an offset past the end of the file,
    the same offset for every frame (each frame asked for would be the same fragment: a
    response of many times the file), overlapping frames, 2^31 - 1 frames declared by
    NumberOfFrames with a 2-entry table. Each: 422 or 404 problem JSON, never a 500; a
    table that lies makes every frame a 422, a short one only the frames it lacks."""
    good = _jpeg(16, 16)
    step = 8 + len(good)
    cases = {  # offsets, lengths, NumberOfFrames, frame asked, frame 1's status
        "huge length": ([0, step], [len(good), 2**64 - 1], 2, "2", 422),
        "offset past the file": ([0, 2**40], [len(good), len(good)], 2, "2", 422),
        "one offset repeated": ([0, 0], [len(good), len(good)], 2, "2", 422),
        "overlapping": ([0, step], [2 * len(good), len(good)], 2, "2", 422),
        "backwards": ([step, 0], [len(good), len(good)], 2, "2", 422),
        "many frames, tiny table": ([0, step], [len(good), len(good)], 2**31 - 1, "3", 200),
    }
    for name, (offsets, lengths, frames, asked, first) in cases.items():
        ds = image(JPEGBaseline8Bit, 16, 16, frames=frames)
        ds.PixelData = encapsulate([good, good], has_bot=False)
        ds.ExtendedOffsetTable = struct.pack("<2Q", *offsets)
        ds.ExtendedOffsetTableLengths = struct.pack("<2Q", *lengths)
        _store(node, ds, tmp_path / f"{name}.dcm")
        r = requests.get(_url(node, ds, f"/frames/{asked}"), timeout=30)
        assert r.status_code in (404, 422), (name, r.status_code, r.text[:300])
        assert r.headers["content-type"] == "application/problem+json", name
        r = requests.get(_url(node, ds, "/frames/1"), timeout=30)
        assert r.status_code == first, (name, r.status_code)
        assert good in r.content if first == 200 else "Offset Table" in r.json()["detail"]


@pytest.mark.parametrize("frames", ["abc", "-5", "2.5"])
def test_a_number_of_frames_that_is_not_a_number_is_no_500(
    node: NodeProcess, tmp_path: Path, frames: str
) -> None:
    """NumberOfFrames is an IS the receive path keeps as sent: every WADO-RS read of
    such an instance answers, none with a 500."""
    ds = image(ExplicitVRLittleEndian, 4, 4)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MF_BYTE_SC
    ds.PixelData = bytes(range(16))
    ds.save_as(tmp_path / "f.dcm", enforce_file_format=True)
    raw = (tmp_path / "f.dcm").read_bytes()
    # NumberOfFrames (0028,0008) IS, written by hand (pydicom refuses such a value).
    value = frames.encode() + b" " * (len(frames) % 2)
    element = b"\x28\x00\x08\x00IS" + struct.pack("<H", len(value)) + value
    at = raw.index(b"\x28\x00\x10\x00US")  # before Rows
    (tmp_path / "f.dcm").write_bytes(raw[:at] + element + raw[at:])
    assert store_file_raw(node.port, tmp_path / "f.dcm") == 0, node.log()[-2000:]
    for tail in ("", "/metadata", "/frames/1", "/rendered", "/bulk/7FE00010", "/frames/1/rendered"):
        r = requests.get(_url(node, ds, tail), timeout=30)
        assert r.status_code < 500, (tail, r.status_code, r.text[:300])


# -- memory per request -------------------------------------------------------------------


def test_a_large_native_frame_is_streamed(node: NodeProcess, tmp_path: Path) -> None:
    """One native frame of 16384 x 16384 x 16 bits (512 MB): frames/1 comes back byte
    for byte while the node's peak RSS grows by far less than the frame (it grew by
    2.4 GB: the frame read whole, then copied into its part)."""
    ds = image(ExplicitVRLittleEndian, 16384, 16384, bits=16)
    pixels = np.arange(16384 * 16384, dtype=np.uint16).tobytes()
    ds.PixelData = pixels
    _store(node, ds, tmp_path / "big.dcm")
    del ds.PixelData
    before = reset_peak(node)
    with requests.get(_url(node, ds, "/frames/1"), stream=True, timeout=300) as r:
        assert r.status_code == 200
        body = b"".join(r.iter_content(1 << 20))
    grown = node.peak_rss_kb() - before
    assert body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0] == pixels
    assert grown < 64 * MB, f"peak RSS grew by {grown // MB} MB"


def test_large_one_bit_frames_starting_mid_byte_come_in_pieces() -> None:
    """The piecewise reader gives, for frames of Bits Allocated 1 larger than a piece
    and starting mid-byte, the bits numpy's unpack/pack gives (in-process: 3 frames of
    2901 x 2903 bits, about 1 MB each)."""
    from dicom_node.http.frames import PixelLayout, native_frame

    bits = 2901 * 2903
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (3 * bits + 7) // 8, dtype=np.uint8).tobytes()
    layout = PixelLayout(ExplicitVRLittleEndian, 0, len(data), 3, bits, None)
    unpacked = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    for n in (1, 2, 3):
        got = native_frame(io.BytesIO(data), layout, n)
        assert not isinstance(got, bytes)  # over BATCH: pieces
        want = np.packbits(unpacked[(n - 1) * bits : n * bits], bitorder="little").tobytes()
        assert b"".join(got) == want, n


@pytest.fixture(scope="module")
def small_budget_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    config = {
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
        "http": {"max_decoded_mb": 100},
        "models": {"bundled": False},
    }
    yield from running_node(tmp_path_factory.mktemp("budget-node"), config)


def test_decoded_frames_past_the_limit_are_refused_from_the_header(
    small_budget_node: NodeProcess, tmp_path: Path
) -> None:
    """A JPEG instance whose header honestly says 8000 x 8000 x 3 (192 MB a frame
    decoded, over http.max_decoded_mb = 100): its frames asked for decoded answer 406
    naming the limit, and only the stored syntax as available, before anything is
    decoded; as stored they are still sent."""
    node = small_budget_node
    ds = image(JPEGBaseline8Bit, 8000, 8000)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = encapsulate([_jpeg(8, 8)])
    _store(node, ds, tmp_path / "honest.dcm")
    before = reset_peak(node)
    octet = 'multipart/related; type="application/octet-stream"'
    r = requests.get(_url(node, ds, "/frames/1"), headers={"Accept": octet}, timeout=60)
    _problem(r, 406, "http.max_decoded_mb")
    assert r.json()["available"] == [JPEGBaseline8Bit]
    assert node.peak_rss_kb() - before < 16 * MB
    r = requests.get(
        _url(node, ds, "/frames/1"), headers={"Accept": octet + "; transfer-syntax=*"}, timeout=60
    )
    assert r.status_code == 200 and _jpeg(8, 8) in r.content


def _peak_growth_of_eight(node: NodeProcess, request: Callable[[], None]) -> int:
    """The node's peak RSS growth (kB) while 8 threads each run ``request`` once."""
    import threading

    before = reset_peak(node)
    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return node.peak_rss_kb() - before


def _large_jpeg(node: NodeProcess, path: Path) -> Dataset:
    """An 8000 x 8000 JPEG instance (64 MB decoded), stored."""
    ds = image(JPEGBaseline8Bit, 8000, 8000)
    ds.PixelData = encapsulate([_jpeg(8000, 8000)])
    return _store(node, ds, path)


def _eight_streamed(node: NodeProcess, url: str, media: str) -> tuple[list[tuple[int, int]], int]:
    """(status, bytes) of 8 concurrent GETs of ``url`` (Accept multipart/related;
    ``media``), and the node's peak RSS growth (kB) meanwhile."""
    accept = {"Accept": f"multipart/related; {media}"}
    results: list[tuple[int, int]] = []

    def one() -> None:
        with requests.get(url, headers=accept, stream=True, timeout=300) as r:
            results.append((r.status_code, sum(len(c) for c in r.iter_content(1 << 20))))

    return results, _peak_growth_of_eight(node, one)


def test_concurrent_conversions_share_the_decoded_limit(
    small_budget_node: NodeProcess, tmp_path: Path
) -> None:
    """8 concurrent retrieves, each decompressing an 8000 x 8000 JPEG (64 MB decoded,
    under http.max_decoded_mb = 100 each): all answer 200 with the decoded pixels, and
    the node's peak RSS grows as for one conversion at a time, not eight: +373 MB (each
    holds its one frame's share of the limit while it is decoded and sent, as decoded
    frames do: http/decompress.py), against +0.5 GB when each was made whole in memory
    and +1.06 GB when each request checked the limit alone."""

    node = small_budget_node
    ds = _large_jpeg(node, tmp_path / "honest.dcm")
    results, grown = _eight_streamed(node, _url(node, ds), 'type="application/dicom"')
    assert len(results) == 8 and all(code == 200 and size > 64_000_000 for code, size in results)
    assert grown < 500 * MB, f"peak RSS grew by {grown // MB} MB"


def test_concurrent_decoded_frames_share_the_decoded_limit(
    small_budget_node: NodeProcess, tmp_path: Path
) -> None:
    """8 concurrent requests for the one frame of an 8000 x 8000 JPEG decoded (64 MB,
    under http.max_decoded_mb = 100 each): all answer the decoded frame, and the node's
    peak RSS grows as for about one decode at a time, not eight (each decode holds 4
    times the frame of the shared limit, from its decode until its part is sent; the
    heap trimmed after each): +375 MB, against +935-1130 MB without the shared limit
    and +629 MB untrimmed."""
    node = small_budget_node
    ds = _large_jpeg(node, tmp_path / "decoded.dcm")
    url = _url(node, ds, "/frames/1")
    results, grown = _eight_streamed(node, url, 'type="application/octet-stream"')
    assert len(results) == 8
    assert all(code == 200 and 64_000_000 < size < 64_001_000 for code, size in results)
    assert grown < 500 * MB, f"peak RSS grew by {grown // MB} MB"


def test_a_client_leaving_mid_frame_frees_its_share(
    small_budget_node: NodeProcess, tmp_path: Path
) -> None:
    """Clients that read 1 MB of a 64 MB decoded frame and leave: the frame's share of
    http.max_decoded_mb (all of it: one decode at a time) is given back when the
    response ends, so the next requests are answered (in 0.5 s here; before the
    response closed its generator, the share waited for the garbage collector, and the
    fourth request for 12 s)."""
    node = small_budget_node
    ds = _large_jpeg(node, tmp_path / "leaving.dcm")
    url = _url(node, ds, "/frames/1")
    accept = {"Accept": 'multipart/related; type="application/octet-stream"'}
    for _ in range(3):
        with requests.get(url, headers=accept, stream=True, timeout=60) as r:
            assert r.status_code == 200
            next(r.iter_content(1 << 20))
    with requests.get(url, headers=accept, stream=True, timeout=30) as r:
        assert r.status_code == 200
        assert 64_000_000 < sum(len(c) for c in r.iter_content(1 << 20)) < 64_001_000


# -- Range --------------------------------------------------------------------------------

RANGES = [  # (Range header, status, slice of the 1000-byte value or None)
    ("bytes=0-9", 206, (0, 10)),
    ("bytes=990-", 206, (990, 1000)),
    ("bytes=-10", 206, (990, 1000)),
    ("bytes=-5000", 206, (0, 1000)),  # suffix longer than the value: all of it
    ("bytes=0-99999999999999999999999", 206, (0, 1000)),
    ("bytes= 3 - 4 ", 206, (3, 5)),
    ("bytes=1000-", 416, None),
    ("bytes=99999999999999999999999999-", 416, None),
    ("bytes=-0", 416, None),
    ("bytes=" + "9" * 5000 + "-", 416, None),  # past int()'s 4300-digit limit
    ("bytes=-" + "9" * 5000, 206, (0, 1000)),
    ("bytes=0-" + "9" * 5000, 206, (0, 1000)),
    ("bytes=5-2", 200, (0, 1000)),  # invalid: ignored (RFC 9110 14.2)
    ("bytes=0-1,5-6", 200, (0, 1000)),  # several ranges: ignored
    ("bytes=abc", 200, (0, 1000)),
    ("bytes=-", 200, (0, 1000)),
    ("items=0-5", 200, (0, 1000)),
    ("bytes=٣-٤", 200, (0, 1000)),  # non-ASCII digits
]


def _part_body(r: requests.Response) -> bytes:
    return r.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]


@pytest.mark.parametrize("deflated", [False, True], ids=["explicit", "deflated"])
def test_hostile_ranges(node: NodeProcess, tmp_path: Path, deflated: bool) -> None:
    """Malformed, overflowing, huge and multiple ranges on a 1000-byte value (in an
    Explicit VR and in a Deflated file): 206 with exactly those bytes, 416 problem JSON
    with ``Content-Range: bytes */1000``, or the whole value (a Range the node ignores,
    as HTTP allows); never a 500."""
    ds = image(ExplicitVRLittleEndian, 10, 50, bits=16)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    value = bytes(np.arange(1000, dtype=np.uint8) * 7 % 251)
    ds.PixelData = value
    if deflated:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    _store(node, ds, tmp_path / "range.dcm")
    url = _url(node, ds, "/bulk/7FE00010")
    for header, status, span in RANGES:
        r = requests.get(url, headers={"Range": header.encode("utf-8")}, timeout=30)
        assert r.status_code == status, (header[:40], r.status_code, r.text[:200])
        if status == 416:
            assert r.headers["content-range"] == "bytes */1000", header[:40]
            assert r.headers["content-type"] == "application/problem+json"
            continue
        assert span is not None
        assert _part_body(r) == value[span[0] : span[1]], header[:40]
        if status == 206:
            assert f"bytes {span[0]}-{span[1] - 1}/1000".encode() in r.content, header[:40]


def _encapsulated_file(ds: Dataset, items: bytes, path: Path) -> None:
    """``ds`` saved with its Pixel Data replaced by ``items`` (offset table item,
    fragment items) and the sequence delimiter, written by hand."""
    ds.PixelData = encapsulate([b"\xff\xd8"])
    ds.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    at = raw.rindex(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff")
    path.write_bytes(raw[: at + 12] + items + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")


def _item(value: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<L", len(value)) + value


def test_a_basic_offset_table_repeating_an_offset_is_a_problem(
    node: NodeProcess, tmp_path: Path
) -> None:
    """A Basic Offset Table [0, 0, 0] (the receive check allows equal offsets) over one
    1 MB fragment: every frame would be that fragment, so frames/1,2,3 would send it
    three times (a 13,000-frame list: 13 GB from a 1 MB file). 422 naming the table."""
    ds = image(JPEGBaseline8Bit, 16, 16, frames=3)
    fragment = b"\xff\xd8" + bytes(2**20) + b"\xff\xd9"
    _encapsulated_file(ds, _item(bytes(12)) + _item(fragment), tmp_path / "bot.dcm")
    assert store_file_raw(node.port, tmp_path / "bot.dcm") == 0, node.log()[-2000:]
    r = requests.get(_url(node, ds, "/frames/1,2,3"), timeout=30)
    _problem(r, 422, "Basic Offset Table")


def test_a_million_tiny_fragments_are_not_walked(node: NodeProcess, tmp_path: Path) -> None:
    """1,000,001 fragments of 2 bytes (10 MB) and no offset table: the fragment walk
    took 2.3 s of CPU per request and sent one 2 MB frame; it now stops at
    MAX_FRAGMENTS and answers 422 naming it, whatever frames are asked for."""
    from dicom_node.http.frames import MAX_FRAGMENTS

    ds = image(JPEGBaseline8Bit, 16, 16, frames=2)
    tiny = _item(b"\x00\x00")
    items = _item(b"") + _item(b"\xff\xd8") + tiny * MAX_FRAGMENTS
    _encapsulated_file(ds, items, tmp_path / "tiny.dcm")
    assert store_file_raw(node.port, tmp_path / "tiny.dcm") == 0, node.log()[-2000:]
    for asked in ("1", "2", "1,2"):
        r = requests.get(_url(node, ds, f"/frames/{asked}"), timeout=120)
        _problem(r, 422, str(MAX_FRAGMENTS))


def test_concurrent_renderings_share_the_decoded_limit(
    small_budget_node: NodeProcess, tmp_path: Path
) -> None:
    """8 concurrent renderings of a 3000 x 3000 JPEG (72 MB while windowed, under
    http.max_decoded_mb = 100 each): all 200, and the node's peak RSS grows as for
    about one at a time."""

    node = small_budget_node
    ds = image(JPEGBaseline8Bit, 3000, 3000)
    ds.PixelData = encapsulate([_jpeg(3000, 3000)])
    _store(node, ds, tmp_path / "render.dcm")
    codes: list[int] = []

    def one() -> None:
        codes.append(requests.get(_url(node, ds, "/rendered"), timeout=300).status_code)

    grown = _peak_growth_of_eight(node, one)
    assert codes == [200] * 8
    assert grown < 400 * MB, f"peak RSS grew by {grown // MB} MB"


# -- bulk data of odd elements ---------------------------------------------------------------


def test_bulk_data_of_odd_elements(node: NodeProcess, tmp_path: Path) -> None:
    """A private OB at the top level is bulk data, byte for byte; one inside a sequence,
    a sequence, an undefined-length UN (an implicit-VR sequence), an item tag, tag 0
    and a tag past every element are not: 404 problem JSON each, never a 500."""
    from pydicom.dataset import Dataset as Item
    from pydicom.sequence import Sequence

    ds = image(ExplicitVRLittleEndian, 4, 4)
    ds.PixelData = bytes(16)
    ds.add_new(0x00091010, "LO", "HOSTILE")  # private creator
    secret = bytes(range(256)) * 8
    ds.add_new(0x00091011, "OB", secret)
    inner = Item()
    inner.add_new(0x00091010, "LO", "HOSTILE")
    inner.add_new(0x00091011, "OB", b"inner!")
    ds.add_new(0x00091012, "SQ", Sequence([inner]))
    path = tmp_path / "odd.dcm"
    ds.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    # An undefined-length UN (0019,1001) holding one empty item, written by hand.
    un = (
        b"\x19\x00\x10\x00LO\x08\x00HOSTILE "
        b"\x19\x00\x01\x10UN\x00\x00\xff\xff\xff\xff"
        b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    )
    at = raw.index(b"\x20\x00\x0d\x00UI")  # StudyInstanceUID (0020,000D)
    path.write_bytes(raw[:at] + un + raw[at:])
    assert store_file_raw(node.port, path) == 0, node.log()[-2000:]
    r = requests.get(_url(node, ds, "/bulk/00091011"), timeout=30)
    assert r.status_code == 200 and _part_body(r) == secret
    for tag in ("00091012", "00191001", "FFFEE000", "00000000", "FFFFFFFF", "7FE00011"):
        r = requests.get(_url(node, ds, f"/bulk/{tag}"), timeout=30)
        _problem(r, 404)
    for tag in ("0009101", "0009101G", "../../etc", "%00"):
        r = requests.get(_url(node, ds, f"/bulk/{tag}"), timeout=30)
        assert r.status_code == 404, (tag, r.status_code)


@pytest.mark.parametrize(
    "element",
    [
        b"\x09\x00\x11\x10OB\x00\x00\xff\xff\xff\xff",  # undefined length on a private OB
        b"\x09\x00\x11\x10OB\x00\x00\x00\x00\x00\x70",  # 1.8 GB claimed, file ends
    ],
    ids=["undefined-length OB", "length past the end"],
)
def test_an_element_whose_length_lies_is_refused_on_receive(
    node: NodeProcess, tmp_path: Path, element: bytes
) -> None:
    """An element with an undefined length (not SQ, UN or Pixel Data) or a length past
    the end of the data: the receive check refuses it, so no WADO-RS read ever meets it
    (the instance is not there: 404)."""
    ds = image(ExplicitVRLittleEndian, 4, 4)
    ds.PixelData = bytes(16)
    ds.add_new(0x00091010, "LO", "HOSTILE")
    path = tmp_path / "lying.dcm"
    ds.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    at = raw.index(b"\x20\x00\x0d\x00UI")
    path.write_bytes(raw[:at] + element + b"\x01\x02\x03\x04" + raw[at:])
    assert store_file_raw(node.port, path) != 0
    r = requests.get(_url(node, ds, "/bulk/00091011"), timeout=30)
    _problem(r, 404)


def test_decodes_waiting_for_room_are_bounded() -> None:
    """In-process: with one decode holding the whole limit, others wait; once
    MAX_WAITING wait, admit() answers 503 (each waiting one holds a server thread),
    and a wait without room ends in TimeoutError. Every thread is joined."""
    import threading

    from dicom_node.http.budget import MAX_WAITING, Budget
    from dicom_node.http.problem import Problem

    budget = Budget()
    release = threading.Event()
    entered: list[int] = []

    def waiter(k: int) -> None:
        with budget.hold(60, 100, wait=30):
            entered.append(k)

    with budget.hold(60, 100):
        budget.admit()
        threads = [threading.Thread(target=waiter, args=(k,)) for k in range(MAX_WAITING)]
        for t in threads:
            t.start()
        for _ in range(500):  # bounded: until all wait (at most 5 s)
            if budget.waiting == MAX_WAITING:
                break
            release.wait(0.01)
        assert budget.waiting == MAX_WAITING and not entered
        with pytest.raises(Problem) as refused:
            budget.admit()
        assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
        with pytest.raises(TimeoutError), budget.hold(60, 100, wait=0.05):
            pass
    for t in threads:
        t.join(30)
    assert sorted(entered) == list(range(MAX_WAITING)) and budget.in_flight == 0


# -- metadata -------------------------------------------------------------------------------


def _many_elements(ds: Dataset, count: int, path: Path) -> None:
    """``ds`` saved with ``count`` empty private OB elements (12 bytes each) before
    its Pixel Data, written by hand."""
    ds.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    at = raw.index(b"\xe0\x7f\x10\x00O")
    elements = bytearray()
    group, elem = 0x7001, 0x1000
    for _ in range(count):
        elements += struct.pack("<HH", group, elem) + b"OB\x00\x00\x00\x00\x00\x00"
        elem += 1
        if elem > 0xFFFF:
            group, elem = group + 2, 0x1000
    path.write_bytes(raw[:at] + bytes(elements) + raw[at:])


def test_metadata_of_a_series_is_streamed_one_instance_at_a_time(
    node: NodeProcess, tmp_path: Path
) -> None:
    """8 instances of 60,000 empty private elements each (720 kB apiece): series
    metadata answers every element of every instance, and the node's peak RSS grows as
    for about one instance's JSON, not all eight: +45 MB (+209 MB when the array was
    built whole)."""
    series = image(ExplicitVRLittleEndian, 4, 4)
    for k in range(8):
        ds = image(ExplicitVRLittleEndian, 4, 4)
        ds.StudyInstanceUID = series.StudyInstanceUID
        ds.SeriesInstanceUID = series.SeriesInstanceUID
        ds.InstanceNumber = k + 1
        ds.PixelData = bytes(16)
        _many_elements(ds, 60_000, tmp_path / f"m{k}.dcm")
        assert store_file_raw(node.port, tmp_path / f"m{k}.dcm") == 0, node.log()[-2000:]
    url = (
        f"{node.http_url}/dicomweb/studies/{series.StudyInstanceUID}/series/"
        f"{series.SeriesInstanceUID}/metadata"
    )
    before = reset_peak(node)
    r = requests.get(url, timeout=600)
    grown = node.peak_rss_kb() - before
    assert r.status_code == 200
    body = r.json()
    assert len(body) == 8 and all(sum(t.startswith("7001") for t in i) == 60_000 for i in body)
    assert grown < 120 * MB, f"peak RSS grew by {grown // MB} MB"


def test_metadata_of_an_instance_of_too_many_elements_is_refused(
    node: NodeProcess, tmp_path: Path
) -> None:
    """500,001 empty private elements (6 MB, stored: the receive walk takes them):
    metadata, frames and the rendering answer 422 naming http.max_header_elements,
    counted by the headers-only walk before pydicom reads any (metadata took 11 s and
    +324 MB), and the node's peak RSS barely moves; bulk data (found by the walk
    alone) and the instance as stored are still served."""
    ds = image(ExplicitVRLittleEndian, 4, 4)
    ds.PixelData = bytes(range(16))
    _many_elements(ds, 500_001, tmp_path / "many.dcm")
    assert store_file_raw(node.port, tmp_path / "many.dcm") == 0, node.log()[-2000:]
    before = reset_peak(node)
    for tail in ("/metadata", "/frames/1", "/rendered"):
        r = requests.get(_url(node, ds, tail), timeout=120)
        _problem(r, 422, "http.max_header_elements")
    assert node.peak_rss_kb() - before < 32 * MB
    r = requests.get(_url(node, ds, "/bulk/7FE00010"), timeout=60)
    assert r.status_code == 200 and _part_body(r) == bytes(range(16))
    stored = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    r = requests.get(_url(node, ds), headers={"Accept": stored}, timeout=60)
    assert r.status_code == 200
