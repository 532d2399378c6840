"""The image size a compressed frame's own codestream declares, checked against the
instance's Rows, Columns and Samples per Pixel before any decoder runs.

A decoder allocates what the codestream says, not what the DICOM header says: 3 MB of
JPEG declaring 16000 x 16000 in an 8 x 8 instance made pydicom's decompress allocate
over 1 GB before failing to reshape. Every limit the node applies (``http.
max_decoded_mb``) is computed from the header, so a frame whose codestream disagrees
with it is refused (422) unread by any decoder. pydicom refuses such a frame after
decoding anyway (the array cannot take the header's shape), so nothing decodable is
lost. RLE is decoded into the header's size and needs no check.

A codestream of the right size can still cost out of proportion to it: a JPEG decoder
passes over the whole image once per scan (50,000 repeated scans of 16 bytes in a
2048 x 2048 frame: 129 s of CPU, holding the GIL), and OpenJPEG allocates about 10 kB
per tile (tiles of 1 x 1 pixel in a 255 x 256 frame: 620 MB). Both are bounded here
(:data:`MAX_SCANS`, :func:`max_tiles`), counted on the whole frame where it is decoded.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

from dicom_node.http import fragments, frames, j2k_coding
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
# ITU-T T.81 syntaxes, whose entropy-coded data stuffs a zero byte after each 0xFF
# (JPEG-LS stuffs a zero bit: its scans are not counted).
JPEG_T81 = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
    }
)
# Scans in one JPEG frame: sequential and lossless ones have one per component (or one
# for all), libjpeg's progressive script 10 for colour.
MAX_SCANS = 100
TILE_PIXELS = 4096  # a JPEG 2000 frame may have a tile per this many pixels (or 64 tiles)


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


def jpeg_scans(pieces: Iterable[bytes]) -> int:
    """Start of Scan markers (0xFFDA) in a JPEG (ITU-T T.81) codestream given in
    pieces (across their edges). Each scan has one, and entropy-coded data holds none
    (a 0xFF there is followed by 0x00 or RSTn); the values of other segments may hold
    the two bytes, so this counts at least the scans."""
    count, last = 0, 0
    for piece in pieces:
        if piece:
            count += piece.count(b"\xff\xda") + (last == 0xFF and piece[0] == 0xDA)
            last = piece[-1]
    return count


def _j2k_start(data: bytes) -> int | None:
    """Where a JPEG 2000 codestream starts (in a JP2 file's ``jp2c`` box if wrapped in
    one), its SOC and SIZ markers; None if it has none."""
    pos = 0
    if data.startswith(_JP2_SIGNATURE):
        found = _jp2_codestream(data)
        if found is None:
            return None
        pos = found
    if data[pos : pos + 4] != b"\xff\x4f\xff\x51" or len(data) < pos + 44:
        return None
    return pos


def _j2k_siz(data: bytes) -> tuple[int, ...] | None:
    """Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz and Csiz of a JPEG 2000
    codestream's SIZ segment; None if it has none."""
    pos = _j2k_start(data)
    return None if pos is None else struct.unpack_from(">8LH", data, pos + 8)


def _j2k_size(data: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) of a JPEG 2000 codestream's SIZ segment; None if it
    has none."""
    siz = _j2k_siz(data)
    if siz is None:
        return None
    x, y, x0, y0, *_, components = siz
    return y - y0, x - x0, components


def j2k_tiles(data: bytes) -> int | None:
    """Tiles of a JPEG 2000 codestream's image (SIZ, ITU-T T.800 B.3); None if it
    declares none that can be read (a tile of size 0)."""
    siz = _j2k_siz(data)
    if siz is None:
        return None
    x, y, _x0, _y0, xt, yt, xt0, yt0, _ = siz
    if not xt or not yt:
        return None
    return -(-max(x - xt0, 0) // xt) * -(-max(y - yt0, 0) // yt)


def max_tiles(rows: int, cols: int) -> int:
    """The tiles a JPEG 2000 frame of ``rows`` x ``cols`` may have: one per
    :data:`TILE_PIXELS` pixels, at least 64 (OpenJPEG's per-tile state is about 10 kB,
    so they cost at most a few bytes a pixel)."""
    return max(64, rows * cols // TILE_PIXELS)


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
        _check_cost(n, frame, ts, rows, cols, samples)


def check_scans(n: int, pieces: Iterable[bytes]) -> None:
    """Problem 422 if JPEG frame ``n`` (in ``pieces``) has more than
    :data:`MAX_SCANS` scans."""
    scans = jpeg_scans(pieces)
    if scans > MAX_SCANS:
        raise Problem(
            422,
            "Unprocessable Content",
            f"frame {n}: its codestream has {scans} scans, more than {MAX_SCANS}: it is "
            "not decoded (a decoder passes over the whole image once per scan)",
            frame=str(n),
        )


def _check_cost(n: int, frame: bytes, ts: str, rows: int, cols: int, samples: int) -> None:
    """Problem 422 if frame ``n`` has more scans (JPEG), or tiles, precincts or
    code-blocks (JPEG 2000), than a decoder should be given (:data:`MAX_SCANS`,
    :func:`max_tiles`, :mod:`.j2k_coding`)."""
    if ts in JPEG_T81:
        check_scans(n, [frame])
    if ts in J2K_FAMILY:
        tiles = j2k_tiles(frame)
        if tiles is None or tiles > max_tiles(rows, cols):
            raise Problem(
                422,
                "Unprocessable Content",
                f"frame {n}: its codestream declares {tiles or 'no'} tiles, more than "
                f"{max_tiles(rows, cols)} for {rows} x {cols} pixels: it is not decoded "
                "(a decoder allocates state for each tile)",
                frame=str(n),
            )
        start = _j2k_start(frame) or 0
        codestream = frame[start:] if start else frame  # (a JP2 file's box: copied)
        excess = j2k_coding.excess(codestream, rows, cols, samples)
        if excess is not None:
            raise Problem(
                422,
                "Unprocessable Content",
                f"frame {n}: its codestream has {excess} for {rows} x {cols} x {samples} "
                "samples: it is not decoded (a decoder allocates state for each)",
                frame=str(n),
            )


def check_instance(inst: Stored, only: int | None = None) -> None:
    """:func:`check_frames` on the stored frames of ``inst`` (or frame ``only``), the
    first :data:`.fragments.HEAD` bytes of each read through the offset tables as
    WADO-RS frames are; then a JPEG frame's scans counted to its end, read a piece at
    a time (pydicom decodes these frames itself). Problem 422 if a frame cannot be
    found. A header further in than the first piece declares no size here (422): real
    ones start the codestream."""
    ts = inst.transfer_syntax
    if ts not in JPEG_FAMILY and ts not in J2K_FAMILY:
        return
    pixels = frames.layout(inst)
    if pixels.value_length != fragments.UNDEFINED:
        return  # native Pixel Data on a compressed syntax: the decoder refuses it
    with open(inst.path, "rb") as fh:
        with fragments.walk_or_422():
            found = fragments.Fragments(fh, pixels)
        for n in [only] if only else range(1, pixels.frames + 1):
            head = fragments.frame_head(found, n)
            check_frames([(n, head)], ts, pixels.rows, pixels.columns, pixels.samples)
            if ts in JPEG_T81 and len(head) == fragments.HEAD:  # the rest of it too
                check_scans(n, fragments.frame_pieces(found, n))
