"""Hypothesis strategies: valid encoded datasets, and corruptions of them whose effect on
the structural check (:mod:`dicom_node.store.check`) is known in advance.

A generated dataset is random elements of the data dictionary (text, numbers, binary),
sequences with defined or undefined lengths nested a few levels, and optionally native
Pixel Data matching Rows x Columns x Samples x Bits x Frames, or encapsulated Pixel Data
(Basic Offset Table and fragments) on an encapsulated transfer syntax. It is encoded by
pydicom in implicit or explicit VR little endian (RLE Lossless when encapsulated).
"""

from __future__ import annotations

import datetime as dt
import struct
import warnings
from dataclasses import dataclass

from hypothesis import assume
from hypothesis import strategies as st
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from dicom_node.store.check import MAX_DEPTH

EXPLICIT, IMPLICIT, ENCAPSULATED = ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless
_SKIPPED_GROUPS = (0x0000, 0x0002, 0x0028, 0x7FE0, 0xFFFE)
_CHARSET = 0x00080005  # a random Specific Character Set would only test pydicom's codecs


def _tags(vr: str) -> list[int]:
    """Public, current, single-valued dictionary tags of ``vr`` (no image pixel module)."""
    return sorted(
        tag
        for tag, (v, vm, _, retired, _) in DicomDictionary.items()
        if v == vr and vm == "1" and not retired and tag >> 16 not in _SKIPPED_GROUPS
        if tag < 0x7FE00010 and not (tag >> 16) % 2 and tag & 0xFFFF and tag != _CHARSET
    )


_TEXT = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefz0123456789-_"), max_size=16)
_VALUES = {
    "CS": st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"), max_size=16),
    "LO": _TEXT,
    "SH": _TEXT,
    "LT": _TEXT,
    "ST": _TEXT,
    "UT": _TEXT,
    "PN": st.builds(lambda a, b: f"{a}^{b}", _TEXT, _TEXT),
    "DA": st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)).map(lambda d: d.strftime("%Y%m%d")),
    "TM": st.times().map(lambda t: t.strftime("%H%M%S")),
    "UI": st.lists(st.integers(1, 99999), min_size=2, max_size=8).map(
        lambda parts: "1.2." + ".".join(map(str, parts))
    ),
    "DS": st.integers(-(10**9), 10**9).map(str),
    "IS": st.integers(-(2**31), 2**31 - 1).map(str),
    "US": st.integers(0, 0xFFFF),
    "SS": st.integers(-(2**15), 2**15 - 1),
    "UL": st.integers(0, 2**32 - 1),
    "SL": st.integers(-(2**31), 2**31 - 1),
    "FL": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "FD": st.floats(allow_nan=False, allow_infinity=False),
    "OB": st.binary(max_size=64),
    "OF": st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4]),
}
_TAGS = {vr: _tags(vr) for vr in _VALUES}
_SQ_TAGS = _tags("SQ")


@st.composite
def elements(draw: st.DrawFn) -> DataElement:
    vr = draw(st.sampled_from(sorted(_VALUES)))
    return DataElement(draw(st.sampled_from(_TAGS[vr])), vr, draw(_VALUES[vr]))


def _sequence(tag: int, items: list[Dataset], undefined: bool) -> DataElement:
    elem = DataElement(tag, "SQ", Sequence(items))
    elem.is_undefined_length = undefined
    for item in items:
        item.is_undefined_length_sequence_item = undefined
    return elem


@st.composite
def datasets(draw: st.DrawFn, depth: int = 0) -> Dataset:
    """Random elements and (up to 3 levels of) sequences of such datasets."""
    ds = Dataset()
    for elem in draw(st.lists(elements(), max_size=8 if depth == 0 else 3)):
        ds[elem.tag] = elem
    if depth < 3:
        for tag in draw(st.lists(st.sampled_from(_SQ_TAGS), max_size=2, unique=True)):
            items = draw(st.lists(datasets(depth + 1), max_size=2))
            ds[tag] = _sequence(tag, items, draw(st.booleans()))
    return ds


@st.composite
def native_pixels(draw: st.DrawFn) -> tuple[Dataset, int]:
    """Image Pixel attributes and native Pixel Data of exactly the length they need;
    returns them and that length."""
    ds = Dataset()
    rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    samples, bits = draw(st.sampled_from([1, 3])), draw(st.sampled_from([8, 16]))
    frames = draw(st.none() | st.integers(1, 3))
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples == 3:
        ds.PlanarConfiguration = 0
    if frames is not None:
        ds.NumberOfFrames = frames
    need = rows * cols * samples * (frames or 1) * bits // 8
    ds.PixelData = draw(st.binary(min_size=need, max_size=need))
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    return ds, need


@st.composite
def encapsulated_pixels(draw: st.DrawFn) -> Dataset:
    """Encapsulated Pixel Data: a Basic Offset Table and one fragment per frame."""
    ds = Dataset()
    frames = draw(st.lists(st.binary(min_size=2, max_size=40).map(_even), min_size=1, max_size=3))
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 4, 4, 1, 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 7, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames, has_bot=draw(st.booleans()))
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def _even(b: bytes) -> bytes:
    return b + b"\0" if len(b) % 2 else b


@dataclass
class Encoded:
    """A dataset, its transfer syntax, its encoding, and where each top-level element
    starts in it (the last offset is the end)."""

    ds: Dataset
    ts: str
    body: bytes
    starts: list[int]
    pixel_need: int | None = None  # native Pixel Data bytes the image attributes need

    @property
    def implicit(self) -> bool:
        return self.ts == IMPLICIT


def encode(ds: Dataset, ts: str) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, ts == IMPLICIT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dataset(fp, ds)
    return fp.getvalue()


def _starts(ds: Dataset, ts: str) -> list[int]:
    starts, at = [0], 0
    for elem in ds:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, ts == IMPLICIT
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_data_element(fp, elem)
        at += len(fp.getvalue())
        starts.append(at)
    return starts


@st.composite
def encoded(draw: st.DrawFn, base: Dataset | None = None, pixels: str | None = None) -> Encoded:
    """A valid dataset (``base``'s elements plus random ones) in a random transfer
    syntax, with native, encapsulated or no Pixel Data (or the ``pixels`` kind given)."""
    ds = draw(datasets())
    if base is not None:
        ds.update(base)
    pixels = pixels or draw(st.sampled_from(["none", "native", "encapsulated"]))
    need = None
    if pixels == "native":
        image, need = draw(native_pixels())
        ds.update(image)
    elif pixels == "encapsulated":
        ds.update(draw(encapsulated_pixels()))
    ts = ENCAPSULATED if pixels == "encapsulated" else draw(st.sampled_from([EXPLICIT, IMPLICIT]))
    body = encode(ds, ts)
    starts = _starts(ds, ts)
    assume(starts[-1] == len(body))
    return Encoded(ds, ts, body, starts, need)


def nested(depth: int, undefined: bool) -> Dataset:
    """A dataset whose (0040,A730) Content Sequence nests ``depth`` levels."""
    inner = Dataset()
    inner.CodeMeaning = "leaf"
    for _ in range(depth):
        outer = Dataset()
        outer[0x0040A730] = _sequence(0x0040A730, [inner], undefined)
        inner = outer
    return inner


NESTING = st.integers(MAX_DEPTH - 2, MAX_DEPTH + 3)


# -- corruptions: each returns the corrupted bytes ---------------------------------------
def _element(data: st.DataObject, enc: Encoded, after: int) -> int:
    """The index of a top-level element, from ``after`` on."""
    assume(len(enc.starts) - 2 >= after)
    return data.draw(st.integers(after, len(enc.starts) - 2), label="element")


def truncate_inside_an_element(data: st.DataObject, enc: Encoded, after: int = 0) -> bytes:
    """Cut the encoding strictly inside one top-level element (from element ``after``)."""
    i = _element(data, enc, after)
    start, end = enc.starts[i], enc.starts[i + 1]
    return enc.body[: data.draw(st.integers(start + 1, end - 1), label="cut")]


def lie_about_a_length(data: st.DataObject, enc: Encoded, after: int = 0) -> bytes:
    """Make one top-level element claim more bytes than follow it."""
    i = _element(data, enc, after)
    start = enc.starts[i]
    body = bytearray(enc.body)
    vr = bytes(body[start + 4 : start + 6])
    if enc.implicit:
        at, fmt, header = start + 4, "<L", 8
    elif vr in (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"):
        at, fmt, header = start + 8, "<L", 12
    else:
        at, fmt, header = start + 6, "<H", 8
    room = len(body) - start - header
    most = 0xFFFF if fmt == "<H" else 0xFFFFFFFE  # 0xFFFFFFFF means "undefined"
    assume(room < most)
    struct.pack_into(fmt, body, at, data.draw(st.integers(room + 1, most), label="lie"))
    return bytes(body)


def wrong_vr(data: st.DataObject, enc: Encoded, after: int = 0) -> bytes:
    """Replace one top-level element's explicit VR by two bytes that are no VR."""
    i = _element(data, enc, after)
    start = enc.starts[i]
    bad = data.draw(st.sampled_from([b"ZZ", b"\0\0", b"ob", b"QQ", b"  ", b"\xff\xff"]))
    return enc.body[: start + 4] + bad + enc.body[start + 6 :]


def short_pixels(data: st.DataObject, enc: Encoded) -> bytes:
    """Native Pixel Data shorter than its image attributes need (its length field and
    the bytes sent agree: a lie the element structure does not show)."""
    start = enc.starts[-2]  # Pixel Data is the last element
    header = 8 if enc.implicit else 12
    keep = data.draw(st.integers(0, enc.pixel_need - 1), label="keep") // 2 * 2
    body = bytearray(enc.body[: start + header + keep])
    struct.pack_into("<L", body, start + header - 4, keep)
    return bytes(body)
