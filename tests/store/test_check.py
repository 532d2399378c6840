"""The structural check on encoded datasets, without a node (dicom_node.store.check)."""

from __future__ import annotations

import struct
import warnings

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_node.store.check import (
    MAX_DEPTH,
    PixelDataMismatch,
    StructureError,
    check_dataset,
)


def _encode(ds: Dataset, ts: str) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = ts != ExplicitVRBigEndian
    fp.is_implicit_VR = ts == ImplicitVRLittleEndian
    write_dataset(fp, ds)
    return fp.getvalue()


def _jpeg() -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))


def _image(rows: int = 4, cols: int = 4, bits: int = 16, frames: int | None = None) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    ds.SamplesPerPixel, ds.Rows, ds.Columns, ds.BitsAllocated = 1, rows, cols, bits
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.PixelData = bytes(rows * cols * (frames or 1) * bits // 8)
    return ds


@pytest.mark.parametrize(
    "ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
def test_native_image_in_each_byte_order(ts: str) -> None:
    check_dataset(_encode(_image(frames=3), ts), ts)
    short = _image(frames=3)
    short.PixelData = short.PixelData[:-2]
    with pytest.raises(PixelDataMismatch):
        check_dataset(_encode(short, ts), ts)


def test_one_bit_pixels_and_ybr_422() -> None:
    ds = _image(rows=3, cols=5, bits=1)
    ds.PixelData = bytes(2)  # 15 bits
    check_dataset(_encode(ds, ExplicitVRLittleEndian), ExplicitVRLittleEndian)
    ds = _image(rows=2, cols=2, bits=8)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 3, "YBR_FULL_422"
    ds.PixelData = bytes(8)  # 2x2 pixels, 4:2:2: 8 bytes, not 12
    check_dataset(_encode(ds, ExplicitVRLittleEndian), ExplicitVRLittleEndian)


def test_encapsulated_icon_inside_a_sequence() -> None:
    ds = _jpeg()
    icon = Dataset()
    icon.PixelData = ds.PixelData
    icon["PixelData"].VR, icon["PixelData"].is_undefined_length = "OB", True
    ds.IconImageSequence = Sequence([icon])
    ts = ds.file_meta.TransferSyntaxUID
    check_dataset(_encode(ds, ts), ts)


def test_bad_offset_table_and_missing_soi() -> None:
    ds = _jpeg()
    ts = ds.file_meta.TransferSyntaxUID
    body = _encode(ds, ts)
    bot = body.index(b"\xfe\xff\x00\xe0", body.rindex(b"\xe0\x7f\x10\x00"))
    bad = body[: bot + 4] + struct.pack("<LL", 4, 7) + body[bot + 8 :]  # a 4-byte BOT of 7
    with pytest.raises(StructureError, match="Offset Table"):
        check_dataset(bad, ts)
    frag = body.index(b"\xff\xd8", bot)
    with pytest.raises(StructureError, match="SOI"):
        check_dataset(body[:frag] + b"\0\0" + body[frag + 2 :], ts)


def test_numeric_value_of_a_wrong_length() -> None:
    ds = Dataset()
    ds.add_new(0x00280010, "US", 4)
    body = bytearray(_encode(ds, ExplicitVRLittleEndian))
    body[6:8] = struct.pack("<H", 3)
    with pytest.raises(StructureError, match="multiple of 2"):
        check_dataset(bytes(body) + b"\0", ExplicitVRLittleEndian)


def test_nesting_limit() -> None:
    def nested(depth: int) -> Dataset:
        ds = Dataset()
        ds.PatientID = "x"
        for _ in range(depth):
            outer = Dataset()
            outer.ContentSequence = Sequence([ds])
            ds = outer
        return ds

    check_dataset(_encode(nested(MAX_DEPTH), ExplicitVRLittleEndian), ExplicitVRLittleEndian)
    with pytest.raises(StructureError, match="nested"):
        check_dataset(
            _encode(nested(MAX_DEPTH + 1), ExplicitVRLittleEndian), ExplicitVRLittleEndian
        )


def test_deflate_bomb_header_is_read_within_a_bound() -> None:
    import tracemalloc
    import zlib

    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from dicom_node.index.header import INFLATE_MAX, parse_header

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.5"
    ds.Columns = 1
    ds.add_new(0x00291010, "OB", b"")  # a private element past the indexed ones
    head = _encode(ds, ExplicitVRLittleEndian)[:-4] + struct.pack("<L", 2**30)
    deflater = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = deflater.compress(head)
    chunk = bytes(2**20)
    for _ in range(256):  # 256 MiB of zeros: about 250 kB deflated
        bomb += deflater.compress(chunk)
    bomb += deflater.flush()
    tracemalloc.start()
    header = parse_header(bomb, DeflatedExplicitVRLittleEndian)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert header.sop_instance_uid == "1.2.3.4"
    assert peak < 3 * INFLATE_MAX
