"""One pass over the encoded elements of a dataset (memory-mapped; values are skipped,
not read), refusing what a reader could not read back as sent.

The walk raises :class:`StructureError` for an element (or item) whose length runs
past the bytes that arrived, a truncated element header, a numeric value (US, FL,
AT…) that is not a whole number of values, an explicit VR that is not a VR
(implicit-VR bytes on an explicit-VR context), elements out of ascending order (random
bytes), an undefined length where only a sequence or encapsulated Pixel Data may have
one, an unterminated sequence or item, sequences nested deeper than
:data:`MAX_DEPTH`, and encapsulated Pixel Data that is not: a Basic Offset Table item
(a multiple of 4 bytes, increasing offsets inside the fragments) and at least one
fragment item, then the sequence delimiter; a JPEG fragment must start with an SOI
marker. On the way it can collect top-level elements, stop at one element
(:meth:`ElementWalk.find`) or stop after a number of elements.

Used by the receive path's check (:mod:`.check`) and to locate bulk data
(:mod:`.nested`).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom.datadict import DicomDictionary
from pydicom.uid import UID, JPEGTransferSyntaxes

MAX_DEPTH = 64  # nested sequences; real objects (RT, SR) stay far below
COLLECT_MAX = 4096  # bytes: longer values of collected elements are left out (unread)

# Explicit VRs with a 4-byte length (after 2 reserved bytes), then those with a 2-byte
# length, each in alphabetical order (as listed: tests/store/fuzz.py draws from them by
# position, so a fixed seed means the same mutation only while this order stays).
LONG_VRS = (
    b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
)  # fmt: skip
SHORT_VRS = (
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO",
    b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
)  # fmt: skip
_LONG_VRS = frozenset(LONG_VRS)
_SHORT_VRS = frozenset(SHORT_VRS)
# Tags the dictionary gives VR SQ (a sequence in implicit VR).
SEQUENCE_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")
# Numeric VRs: a value is a whole number of these (pydicom refuses to read one that is
# not; O* VRs it keeps as bytes).
_VALUE_SIZE = {
    b"AT": 4,
    b"FL": 4,
    b"FD": 8,
    b"SL": 4,
    b"SS": 2,
    b"UL": 4,
    b"US": 2,
    b"SV": 8,
    b"UV": 8,
}
# The same by tag, for implicit VR (from the dictionary; "US or SS" and the like: 2).
_SIZE_OF_TAG = {
    tag: _VALUE_SIZE[entry[0][:2].encode()]
    for tag, entry in DicomDictionary.items()
    if entry[0][:2].encode() in _VALUE_SIZE and "OW" not in entry[0]
}
UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
# Top-level attributes the Pixel Data length is checked against.
_SAMPLES, _PHOTOMETRIC, _FRAMES, _ROWS, _COLUMNS, _BITS = (
    0x00280002,
    0x00280004,
    0x00280008,
    0x00280010,
    0x00280011,
    0x00280100,
)
_KEPT = frozenset({_SAMPLES, _PHOTOMETRIC, _FRAMES, _ROWS, _COLUMNS, _BITS})
_JPEG = frozenset(JPEGTransferSyntaxes)

# tag -> (explicit VR or None, value; None if over COLLECT_MAX bytes, left unread)
Collected = dict[int, tuple[bytes | None, bytes | None]]


class StructureError(ValueError):
    """The encoded dataset is malformed (status 0xC210)."""


class TooManyElements(StructureError):
    """The dataset has more elements than the walk was let meet
    (:attr:`ElementWalk.elements_left`)."""


class PixelDataMismatch(ValueError):
    """Pixel Data does not match the image attributes (status 0xA900)."""


class Located(Exception):  # an outcome that ends the walk, not an error
    """Where the value of the element :meth:`ElementWalk.find` looks for lies: ``offset``
    -1 if the dataset has no such top-level element, ``length`` -1 for a sequence;
    ``vr`` the explicit VR (None in implicit VR); ``tag`` the element's (-1 if none)."""

    def __init__(self, vr: bytes | None, offset: int, length: int, tag: int = -1) -> None:
        super().__init__(vr, offset, length, tag)
        self.vr, self.offset, self.length, self.tag = vr, offset, length, tag


NOT_FOUND = Located(None, -1, 0)  # returned (never raised): no such element


def tag_name(tag: int) -> str:
    """``tag`` as ``(gggg,eeee)``, for error messages."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def is_walked(ts: UID) -> bool:
    """Whether a dataset in transfer syntax ``ts`` can be walked (not deflated, and a
    transfer syntax at all)."""
    return not ts.is_deflated and ts.is_transfer_syntax


@contextmanager
def map_part10(path: Path | str) -> Iterator[tuple[mmap.mmap, int]]:
    """The Part 10 file at ``path`` memory-mapped, and where its dataset starts (its File
    Meta must start with its group length, as the receive path writes it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size <= 144:
            raise StructureError("empty dataset")
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as buf:
            if buf[128:132] != b"DICM" or buf[132:138] != b"\x02\x00\x00\x00UL":
                raise StructureError("no File Meta group length")
            yield buf, 144 + int.from_bytes(buf[140:144], "little")
    finally:
        os.close(fd)


class ElementWalk:
    """One pass over an encoded dataset in ``buf`` in transfer syntax ``ts``; the
    top-level elements of ``collect`` met are kept in :attr:`collected`."""

    def __init__(
        self, buf: bytes | mmap.mmap, ts: UID, collect: frozenset[int] = frozenset()
    ) -> None:
        self.buf = buf
        self.size = len(buf)
        self.implicit = ts.is_implicit_VR
        little = ts.is_little_endian
        self.encapsulated = ts.is_encapsulated
        self.jpeg = ts in _JPEG
        e = "<" if little else ">"
        self.header = struct.Struct(e + "HHL")  # group, element, 32-bit length (or VR+16)
        self.short = struct.Struct(e + "H")
        self.long = struct.Struct(e + "L")
        self.kept: dict[int, bytes] = {}  # top-level image attributes (for check_pixels)
        self.pixel_length: int | None = None  # top-level Pixel Data's; -1: encapsulated
        self.collect = collect  # top-level tags whose raw elements the caller wants
        self.collected: Collected = {}
        self.locate = -1  # a top-level tag whose value's place the caller wants
        self.or_then: frozenset[int] = frozenset()  # later tags that do as well (headers)
        self.at_header = False  # stop at that element's header, its value unread
        self.elements_left = -1  # elements (all levels) the caller lets the walk meet

    def find(self, tag: int, start: int, end: int | None, implicit: bool) -> Located:
        """Where the value of top-level element ``tag`` of the dataset from ``start`` to
        ``end`` (None: to its item delimiter) lies; the walk stops there
        (:data:`NOT_FOUND` if the dataset has no such element)."""
        self.locate = tag
        try:
            self.dataset(start, end, 0, implicit)
        except Located as found:
            return found
        return NOT_FOUND

    def find_header(
        self,
        tag: int,
        start: int,
        end: int | None,
        implicit: bool,
        or_then: frozenset[int] = frozenset(),
    ) -> Located:
        """As :meth:`find`, but the walk stops at the element's header without reading
        its value: encapsulated Pixel Data's fragments are not walked (their item headers,
        8 bytes every fragment, would map most of a large file in) and its length is
        :data:`UNDEFINED_LENGTH`. With ``or_then`` (tags after ``tag``), the first
        top-level element from ``tag`` on is found if it is one of them too."""
        self.at_header, self.or_then = True, or_then
        return self.find(tag, start, end, implicit)

    def dataset(self, pos: int, end: int | None, depth: int, implicit: bool) -> int:
        """Walk the elements from ``pos`` up to ``end`` (or an item delimiter when None);
        return where they stop."""
        buf, limit, unpack = self.buf, self.size if end is None else end, self.header.unpack_from
        last, locate = -1, self.locate if depth == 0 else -1
        while pos < limit:
            if pos + 8 > limit:
                raise StructureError(f"element header cut short at byte {pos}")
            group, elem, length = unpack(buf, pos)
            tag = group << 16 | elem
            if group == 0xFFFE:
                if tag == ITEM_END and end is None:
                    return pos + 8
                raise StructureError(f"unexpected {tag_name(tag)} at byte {pos}")
            if tag <= last:
                raise StructureError(f"{tag_name(tag)} out of order at byte {pos}")
            last = tag
            if self.elements_left == 0:
                raise TooManyElements(f"more elements than the walk was let meet, at byte {pos}")
            self.elements_left -= 1
            vr: bytes | None = None
            if implicit:
                pos += 8
            else:
                vr = buf[pos + 4 : pos + 6]
                if vr in _SHORT_VRS:
                    length = self.short.unpack_from(buf, pos + 6)[0]
                    pos += 8
                elif vr in _LONG_VRS:
                    if pos + 12 > limit:
                        raise StructureError(f"element header cut short at byte {pos}")
                    length = self.long.unpack_from(buf, pos + 8)[0]
                    pos += 12
                else:
                    raise StructureError(f"{tag_name(tag)} has no valid VR ({bytes(vr)!r})")
            if locate >= 0 and tag >= locate:
                self._found(tag, vr, pos, length)
            if length == UNDEFINED_LENGTH:
                if tag == PIXEL_DATA and vr != b"SQ":  # also an icon's, in a sequence
                    end_pixels = self.encapsulated_pixels(pos, top=depth == 0)
                    if tag == locate:  # its value: less the sequence delimiter
                        raise Located(vr, pos, end_pixels - 8 - pos, tag)
                    pos = end_pixels
                elif vr in (b"SQ", b"UN", None):  # UN: an implicit-VR sequence
                    pos = self.sequence(pos, None, depth + 1, implicit or vr == b"UN")
                else:
                    raise StructureError(f"{tag_name(tag)} ({vr!r}) has an undefined length")
                continue
            if pos + length > limit:
                raise StructureError(f"{tag_name(tag)} claims {length} bytes, {limit - pos} left")
            size = _VALUE_SIZE.get(vr, 0) if vr is not None else _SIZE_OF_TAG.get(tag, 0)
            if size and length % size:
                raise StructureError(
                    f"{tag_name(tag)} has {length} bytes, not a multiple of {size}"
                )
            if vr == b"SQ" or (vr is None and tag in SEQUENCE_TAGS):
                self.sequence(pos, pos + length, depth + 1, implicit)
            elif depth == 0:
                if tag in _KEPT:
                    self.kept[tag] = bytes(buf[pos : pos + length])
                elif tag == PIXEL_DATA:
                    self.pixel_length = length
                if tag in self.collect:
                    value = bytes(buf[pos : pos + length]) if length <= COLLECT_MAX else None
                    self.collected[tag] = (vr, value)
            pos += length
        if end is None:
            raise StructureError("item without its delimiter")
        return pos

    def _found(self, tag: int, vr: bytes | None, pos: int, length: int) -> None:
        """Stop the walk at the top-level element :attr:`locate` (or past where it would
        be): raise :class:`Located`, unless its value is encapsulated Pixel Data (found
        at its end)."""
        if self.at_header and (tag == self.locate or tag in self.or_then):
            raise Located(vr, pos, length, tag)
        if tag != self.locate:
            raise Located(None, -1, 0)  # not in the dataset
        if length != UNDEFINED_LENGTH:
            if pos + length > self.size:
                raise StructureError(
                    f"{tag_name(tag)} claims {length} bytes, {self.size - pos} left"
                )
            raise Located(vr, pos, length, tag)
        if tag != PIXEL_DATA or vr == b"SQ":
            raise Located(vr, pos, -1, tag)  # a sequence: no bulk value

    def sequence(self, pos: int, end: int | None, depth: int, implicit: bool) -> int:
        """Walk the items of a sequence; return where it stops."""
        if depth > MAX_DEPTH:
            raise StructureError(f"sequences nested deeper than {MAX_DEPTH}")
        limit = self.size if end is None else end
        while pos < limit:
            if pos + 8 > limit:
                raise StructureError(f"item header cut short at byte {pos}")
            group, elem, length = self.header.unpack_from(self.buf, pos)
            tag = group << 16 | elem
            pos += 8
            if tag == SEQUENCE_END and end is None:
                return pos
            if tag != ITEM:
                raise StructureError(f"sequence holds {tag_name(tag)} at byte {pos - 8}")
            if length == UNDEFINED_LENGTH:
                pos = self.dataset(pos, None, depth, implicit)
            elif pos + length > limit:
                raise StructureError(f"item claims {length} bytes, {limit - pos} left")
            else:
                pos = self.dataset(pos, pos + length, depth, implicit)
        if end is None:
            raise StructureError("sequence without its delimiter")
        return pos

    def encapsulated_pixels(self, pos: int, top: bool = True) -> int:
        """Walk encapsulated Pixel Data: offset table, fragments, delimiter."""
        if not self.encapsulated:
            raise StructureError("undefined-length Pixel Data in a native transfer syntax")
        buf, unpack = self.buf, self.header.unpack_from
        table: tuple[int, int] | None = None
        first_fragment, fragment_bytes = -1, 0
        while True:
            if pos + 8 > self.size:
                raise StructureError("encapsulated Pixel Data cut short")
            group, elem, length = unpack(buf, pos)
            tag = group << 16 | elem
            pos += 8
            if tag == SEQUENCE_END:
                break
            if tag != ITEM:
                raise StructureError(f"encapsulated Pixel Data holds {tag_name(tag)}")
            if length == UNDEFINED_LENGTH or pos + length > self.size:
                raise StructureError("a Pixel Data fragment runs past the data received")
            if table is None:
                table = (pos, length)
            else:
                if first_fragment < 0:
                    first_fragment = pos
                fragment_bytes += 8 + length
            pos += length
        if first_fragment < 0 or table is None:
            raise StructureError("encapsulated Pixel Data without a fragment")
        self._check_offsets(*table, fragment_bytes)
        if self.jpeg and buf[first_fragment : first_fragment + 2] != b"\xff\xd8":
            raise StructureError("JPEG Pixel Data fragment without an SOI marker")
        if top:
            self.pixel_length = -1  # encapsulated
        return pos

    def _check_offsets(self, pos: int, length: int, fragment_bytes: int) -> None:
        if length % 4:
            raise StructureError("Basic Offset Table length not a multiple of 4")
        offsets = struct.unpack_from(f"{self.short.format[0]}{length // 4}L", self.buf, pos)
        steps = zip(offsets, offsets[1:], strict=False)
        if offsets and (
            offsets[0] != 0 or any(b < a for a, b in steps) or offsets[-1] >= fragment_bytes
        ):
            raise StructureError("Basic Offset Table does not fit the fragments")

    def _us(self, tag: int) -> int | None:
        raw = self.kept.get(tag)
        return self.short.unpack(raw)[0] if raw is not None and len(raw) == 2 else None

    def check_pixels(self) -> None:
        """After the walk: native Pixel Data as long as the image attributes say (top
        level only); raise :class:`PixelDataMismatch` or :class:`StructureError`."""
        if self.pixel_length is None:
            return
        if self.pixel_length >= 0 and self.encapsulated:
            raise StructureError("native Pixel Data on a compressed transfer syntax")
        if self.pixel_length < 0:
            return
        rows, cols, bits = self._us(_ROWS), self._us(_COLUMNS), self._us(_BITS)
        if rows is None or cols is None or bits is None:
            raise PixelDataMismatch("Pixel Data without Rows, Columns or Bits Allocated")
        samples = self._us(_SAMPLES) or 1
        try:
            frames = int(self.kept.get(_FRAMES, b"1").strip(b" \0") or 1)
        except ValueError:  # malformed: hold the data to one frame at least
            frames = 1
        values = rows * cols * samples * max(frames, 1)
        if self.kept.get(_PHOTOMETRIC, b"").strip(b" \0") == b"YBR_FULL_422":
            values = values // 3 * 2  # two chroma samples per two pixels
        expected = (values * bits + 7) // 8
        if self.pixel_length < expected:
            raise PixelDataMismatch(
                f"Pixel Data has {self.pixel_length} bytes, the image attributes need {expected}"
            )
