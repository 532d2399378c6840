"""The image size a JPEG / JPEG-LS codestream declares (dicom_node.http.codestream), read
before any decoder runs: on pydicom's and pydicom-data's compressed test files, and on
hostile codestreams."""

from __future__ import annotations

import struct
import warnings

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
