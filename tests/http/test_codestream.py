"""The image size a JPEG / JPEG-LS / JPEG 2000 codestream declares
(dicom_node.http.codestream), read before any decoder runs: on pydicom's and
pydicom-data's compressed test files, on a JP2 file, and on hostile codestreams."""

from __future__ import annotations

import io
import struct
import warnings

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_files
from pydicom.encaps import generate_frames

from dicom_node.http.codestream import JPEG_FAMILY, declared_size

BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS = "1.2.840.10008.1.2.4.80"


def _jpeg_family_files() -> list[tuple[str, str, bytes, tuple[int, int, int]]]:
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(get_testdata_files("*.dcm")):
            try:
                ds = pydicom.dcmread(path)
                ts = str(ds.file_meta.TransferSyntaxUID)
                if ts not in JPEG_FAMILY or "PixelData" not in ds:
                    continue
                frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
                first = next(generate_frames(ds.PixelData, number_of_frames=frames))
            except Exception:  # noqa: BLE001 - a file pydicom itself cannot read is not ours to test
                continue
            found.append(
                (path.rsplit("/", 1)[-1], ts, first, (ds.Rows, ds.Columns, ds.SamplesPerPixel))
            )
    return found


FILES = _jpeg_family_files()


def test_the_corpus_has_jpeg_and_jpeg_ls_files() -> None:
    syntaxes = {ts for _, ts, _, _ in FILES}
    assert len(FILES) >= 20 and BASELINE in syntaxes and JPEG_LS in syntaxes


@pytest.mark.parametrize(("name", "ts", "frame", "size"), FILES, ids=[f[0] for f in FILES])
def test_declared_size_is_the_files_rows_columns_and_samples(
    name: str, ts: str, frame: bytes, size: tuple[int, int, int]
) -> None:
    assert declared_size(frame, ts) == size


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


SOF0_16000 = _segment(0xC0, struct.pack(">BHHB", 8, 16000, 16000, 3) + b"\x00" * 9)


def test_a_size_behind_other_segments_and_fill_bytes_is_found() -> None:
    data = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00" + b"\x00" * 9) + b"\xff\xff" + SOF0_16000
    assert declared_size(data, BASELINE) == (16000, 16000, 3)
    jpeg_ls = b"\xff\xd8" + _segment(0xF7, struct.pack(">BHHB", 16, 7, 9, 1) + b"\x00" * 3)
    assert declared_size(jpeg_ls, JPEG_LS) == (7, 9, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a jpeg at all",
        b"\xff\xd8",
        b"\xff\xd8" + SOF0_16000[:8],  # the frame header cut short
        b"\xff\xd8" + _segment(0xDA, b"\x00" * 10) + SOF0_16000,  # a scan before any frame
        b"\xff\xd8" + b"\xff\xe0\xff\xff" + SOF0_16000,  # a segment length past the end
        b"\xff\xd8" + b"\xff\xe0\x00\x01" + SOF0_16000,  # a length shorter than itself
        b"\xff\xd8\x00\x00" + SOF0_16000,  # no marker where one must be
    ],
)
def test_a_codestream_without_a_readable_frame_header_declares_no_size(data: bytes) -> None:
    assert declared_size(data, BASELINE) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_after_the_start_marker_give_a_size_or_none(tail: bytes) -> None:
    size = declared_size(b"\xff\xd8" + tail, BASELINE)
    assert size is None or (len(size) == 3 and all(0 <= v <= 0xFFFF for v in size))


def test_a_long_run_of_fill_bytes_declares_no_size() -> None:
    """8 MB of fill bytes and no frame header: None (the run is skipped at once, not
    walked a byte at a time in Python: 1.4 s a frame)."""
    assert declared_size(b"\xff\xd8" + b"\xff" * (8 << 20), BASELINE) is None


def test_a_frame_header_behind_too_many_segments_is_not_looked_for() -> None:
    """100,000 empty segments before the frame header (real JPEGs have fewer than 30):
    None, the walk stops at MAX_SEGMENTS, so its frame header is never trusted."""
    from dicom_node.http.codestream import MAX_SEGMENTS

    assert MAX_SEGMENTS < 100_000
    data = b"\xff\xd8" + _segment(0xE0, b"") * 100_000 + SOF0_16000
    assert declared_size(data, BASELINE) is None
    few = b"\xff\xd8" + _segment(0xE0, b"") * (MAX_SEGMENTS - 1) + SOF0_16000
    assert declared_size(few, BASELINE) == (16000, 16000, 3)


# -- JPEG 2000 in a JP2 file (ISO 15444-1 Annex I) ---------------------------------------
J2K = "1.2.840.10008.1.2.4.90"
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
FTYP = b"\x00\x00\x00\x14ftypjp2 \x00\x00\x00\x00jp2 "


def _siz(rows: int, columns: int, components: int) -> bytes:
    """The start of a codestream: SOC, then a SIZ segment for one tile."""
    size = struct.pack(">H2L2L2L2LH", 0, columns, rows, 0, 0, columns, rows, 0, 0, components)
    size += b"\x07\x01\x01" * components  # 8-bit unsigned, not subsampled
    return b"\xff\x4f\xff\x51" + struct.pack(">H", 2 + len(size)) + size


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">L", 8 + len(payload)) + kind + payload


def test_a_jp2_codestream_is_found_by_walking_its_boxes() -> None:
    """An earlier box (XML) whose payload holds ``jp2c`` and a SIZ of 16000 x 16000:
    the size is the real codestream's, in the top-level jp2c box (a search for the
    first ``jp2c`` bytes read the one in the XML)."""
    decoy = _box(b"xml ", b"<x>jp2c" + _siz(16000, 16000, 3) + b"</x>")
    data = JP2_SIGNATURE + FTYP + decoy + _box(b"jp2c", _siz(8, 8, 1) + b"\xff\xd9")
    assert declared_size(data, J2K) == (8, 8, 1)


def test_jp2_boxes_of_extended_length_and_a_last_box_to_the_end_are_walked() -> None:
    """A box whose length is in XLBox (LBox 1), then jp2c with LBox 0 (to the end)."""
    xl_payload = b"jp2c" + _siz(16000, 16000, 3)
    xl = struct.pack(">L4sQ", 1, b"uuid", 16 + len(xl_payload)) + xl_payload
    last = struct.pack(">L4s", 0, b"jp2c") + _siz(7, 9, 3)
    assert declared_size(JP2_SIGNATURE + FTYP + xl + last, J2K) == (7, 9, 3)


def test_a_real_jp2_file_declares_its_size() -> None:
    """A JP2 file written by OpenJPEG (Pillow): its boxes, then its codestream's SIZ."""
    out = io.BytesIO()
    Image.new("RGB", (9, 7)).save(out, format="JPEG2000", no_jp2=False)
    data = out.getvalue()
    assert data.startswith(JP2_SIGNATURE)
    assert declared_size(data, J2K) == (7, 9, 3)


@pytest.mark.parametrize(
    "boxes",
    [
        FTYP + _box(b"xml ", b"jp2c" + _siz(8, 8, 1)),  # jp2c only inside another box
        FTYP + struct.pack(">L4s", 0, b"xml ") + _box(b"jp2c", _siz(8, 8, 1)),  # to the end
        FTYP + struct.pack(">L4s", 4, b"xml ") + _box(b"jp2c", _siz(8, 8, 1)),  # LBox 2-7
        FTYP + struct.pack(">L4sQ", 1, b"xml ", 8) + _box(b"jp2c", _siz(8, 8, 1)),  # XL < 16
        FTYP + struct.pack(">L4s", 1 << 20, b"xml ") + _box(b"jp2c", _siz(8, 8, 1)),  # past
        FTYP + b"\x00\x00\x00",  # a box header cut short
        FTYP + _box(b"jp2c", _siz(8, 8, 1)[:20]),  # a SIZ cut short
    ],
    ids=["inside", "to-the-end", "lbox-4", "xlbox-8", "past-the-end", "cut", "siz-cut"],
)
def test_a_jp2_without_a_readable_codestream_declares_no_size(boxes: bytes) -> None:
    assert declared_size(JP2_SIGNATURE + boxes, J2K) is None


def test_a_jp2_codestream_behind_too_many_boxes_is_not_looked_for() -> None:
    """100,000 empty boxes before jp2c (real JP2 files have a handful): None, the walk
    stops at MAX_BOXES."""
    from dicom_node.http.codestream import MAX_BOXES

    assert MAX_BOXES < 100_000
    codestream = _box(b"jp2c", _siz(8, 8, 1))
    assert declared_size(JP2_SIGNATURE + _box(b"free", b"") * 100_000 + codestream, J2K) is None
    few = JP2_SIGNATURE + _box(b"free", b"") * (MAX_BOXES - 2) + codestream
    assert declared_size(few, J2K) == (8, 8, 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=96))
def test_any_bytes_after_the_jp2_signature_give_a_size_or_none(tail: bytes) -> None:
    size = declared_size(JP2_SIGNATURE + tail, J2K)
    assert size is None or (len(size) == 3 and all(0 <= v <= 0xFFFFFFFF for v in size))
