"""The image size a compressed frame's own codestream declares, checked against the
instance's Rows, Columns and Samples per Pixel before any decoder runs.

A decoder allocates what the codestream says, not what the DICOM header says: 3 MB of
JPEG declaring 16000 x 16000 in an 8 x 8 instance made pydicom's decompress allocate
over 1 GB before failing to reshape. Every limit the node applies (``http.
max_decoded_mb``) is computed from the header, so a frame whose codestream disagrees
with it is refused (422) unread by any decoder. pydicom refuses such a frame after
decoding anyway (the array cannot take the header's shape), so nothing decodable is
lost. RLE is decoded into the header's size and needs no check.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

from dicom_node.http import fragments, frames
from dicom_node.http.problem import Problem
from dicom_node.http.wado import Stored

JPEG_FAMILY = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
    }
)
J2K_FAMILY = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    }
)
RLE = "1.2.840.10008.1.2.5"


# Start of Frame markers (ITU-T T.81 B.1.1.3, and 0xF7 of JPEG-LS, T.87): their segment
# holds the sample precision, lines, samples per line and components.
_SOF = (frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}
_ALONE = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, TEM: no length follows
_SOS = 0xDA
_MARKER = re.compile(rb"\xff+[^\xff]")  # a marker after its fill bytes (B.1.1.2)
MAX_SEGMENTS = 1024  # walked before the Start of Frame; real JPEGs have fewer than 30


def _jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) of a JPEG or JPEG-LS codestream's Start of Frame
    segment; None if the codestream has none before its first scan, or none within its
    first :data:`MAX_SEGMENTS` segments. Runs of fill bytes are skipped in one match
    (8 MB of them took 1.4 s walked a byte at a time)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    for _ in range(MAX_SEGMENTS):
        found = _MARKER.match(data, pos)
        if found is None or found.end() + 2 > len(data):
            return None
        pos = found.end() - 2  # the last 0xFF of the run, then the marker
        marker = data[pos + 1]
        if marker in _ALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _SOF:
            if length < 8 or pos + 10 > len(data):
                return None
            _precision, rows, columns, components = struct.unpack_from(">BHHB", data, pos + 4)
            return rows, columns, components
        if marker == _SOS or length < 2:
            return None
        pos += 2 + length
    return None


# A JP2 file (ISO 15444-1 Annex I) starts with its signature box; its codestream is the
# payload of its first top-level Contiguous Codestream box (I.5.4).
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "
MAX_BOXES = 64  # top-level boxes walked before jp2c; real JP2 files have a handful


def _jp2_codestream(data: bytes) -> int | None:
    """Where the codestream of a JP2 file starts: the payload of its first top-level
    ``jp2c`` box, found by walking the boxes from the first (I.4: LBox, TBox, XLBox if
    LBox is 1; LBox 0 runs to the end of the file, so it is the last). None if there is
    none within the first :data:`MAX_BOXES` boxes, or a box's length is invalid (2-7,
    or less than its header) or ends past ``data``."""
    pos = 0
    for _ in range(MAX_BOXES):
        if pos + 8 > len(data):
            return None
        length, kind = struct.unpack_from(">L4s", data, pos)
        header = 8
        if length == 1:  # the length is in XLBox
            if pos + 16 > len(data):
                return None
            (length,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        if kind == b"jp2c":
            return pos + header
        if length < header:  # 0 (to the end: no box follows), or invalid
            return None
        pos += length
    return None


def _j2k_size(data: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) of a JPEG 2000 codestream's SIZ segment (in a JP2
    file's ``jp2c`` box if wrapped in one); None if it has none."""
    pos = 0
    if data.startswith(_JP2_SIGNATURE):
        found = _jp2_codestream(data)
        if found is None:
            return None
        pos = found
    if data[pos : pos + 4] != b"\xff\x4f\xff\x51" or len(data) < pos + 44:
        return None
    x, y, x0, y0 = struct.unpack_from(">4L", data, pos + 8)
    (components,) = struct.unpack_from(">H", data, pos + 40)
    return y - y0, x - x0, components


def declared_size(frame: bytes, ts: str) -> tuple[int, int, int] | None:
    """(rows, columns, components) the frame's codestream declares; None if it declares
    none that can be read."""
    if ts in JPEG_FAMILY:
        return _jpeg_size(frame)
    if ts in J2K_FAMILY:
        return _j2k_size(frame)
    return None


def check_frames(
    numbered: Iterable[tuple[int, bytes]], ts: str, rows: int, cols: int, samples: int
) -> None:
    """Problem 422 for the first frame whose codestream declares another size than
    ``rows`` x ``columns`` x ``samples`` (or none at all), so that no decoder allocates
    what it says. Syntaxes decoded into the header's size (RLE) are not checked."""
    if ts not in JPEG_FAMILY and ts not in J2K_FAMILY:
        return
    for n, frame in numbered:
        size = declared_size(frame, ts)
        if size is None:
            raise Problem(
                422,
                "Unprocessable Content",
                f"frame {n}: its codestream declares no image size, so it is not decoded",
                frame=str(n),
            )
        if size[0] != rows or size[1] != cols or size[2] != samples:
            raise Problem(
                422,
                "Unprocessable Content",
                f"frame {n}: its codestream declares {size[0]} x {size[1]} x {size[2]} "
                f"samples, the instance's attributes {rows} x {cols} x {samples}: it is not "
                "decoded (a decoder allocates what the codestream says)",
                frame=str(n),
            )


def check_instance(inst: Stored, only: int | None = None) -> None:
    """:func:`check_frames` on the stored frames of ``inst`` (or frame ``only``), the
    first :data:`.fragments.HEAD` bytes of each read through the offset tables as
    WADO-RS frames are; Problem 422 if a frame cannot be found. A header further in
    than that declares no size here (422): real ones start the codestream."""
    ts = inst.transfer_syntax
    if ts not in JPEG_FAMILY and ts not in J2K_FAMILY:
        return
    pixels = frames.layout(inst)
    if pixels.value_length != fragments.UNDEFINED:
        return  # native Pixel Data on a compressed syntax: the decoder refuses it
    with open(inst.path, "rb") as fh:
        with fragments.walk_or_422():
            found = fragments.Fragments(fh, pixels)
        numbers = [only] if only else range(1, pixels.frames + 1)
        check_frames(
            ((n, fragments.frame_head(found, n)) for n in numbers),
            ts,
            pixels.rows,
            pixels.columns,
            pixels.samples,
        )
