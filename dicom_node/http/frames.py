"""WADO-RS frames (PS3.18 section 10.4, "Retrieve Transaction", frame list resources).

``.../instances/{i}/frames/{list}`` answers ``multipart/related`` with one part per
requested frame, in the order asked. Frames are sent as stored, never transcoded:
native (uncompressed) frames as ``application/octet-stream`` with Explicit VR Little
Endian, encapsulated frames as their compressed bitstream with the media type of the
stored transfer syntax (PS3.18 table 8.7.3-2: :mod:`.frames_accept`). Only the bytes
of the requested frames are read: the header up to Pixel Data, then a seek to each
frame (for encapsulated data, through the Basic or Extended Offset Table, or the
fragment items' headers, read once per request).
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.encaps import (
    generate_fragments,
    parse_basic_offsets,
    parse_fragments,
)
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from starlette.responses import StreamingResponse
from starlette.types import Send

from dicom_node.http.frames_accept import (  # re-exported: the routes use them as frames.*
    OCTET,
    negotiate,
    parse_frame_list,
)
from dicom_node.http.problem import Problem
from dicom_node.http.wado import Stored, check_files, read_dataset
from dicom_node.index.header import INFLATE_MAX

__all__ = [
    "OCTET",
    "FramesResponse",
    "PixelLayout",
    "check_numbers",
    "frame_bytes",
    "layout",
    "multipart",
    "negotiate",
    "parse_frame_list",
]

log = logging.getLogger(__name__)

PIXEL_DATA = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian
UNDEFINED = 0xFFFFFFFF
BATCH = 1 << 20  # bytes of frames sent together


@dataclass(frozen=True)
class PixelLayout:
    """Where the Pixel Data of a file lies and how its frames are laid out."""

    transfer_syntax: str
    value_offset: int  # file offset of the value (or of its first item, encapsulated)
    value_length: int  # UNDEFINED when encapsulated
    frames: int
    frame_bits: int  # bits per native frame
    extended_offsets: tuple[bytes, bytes] | None


def layout(inst: Stored) -> PixelLayout:
    """The instance's pixel layout from its header; Problem 404 if it has no Pixel
    Data."""
    check_files([inst])
    ts = inst.transfer_syntax
    if ts == DeflatedExplicitVRLittleEndian:  # positions are in the inflated stream
        # pydicom would inflate the whole file: its header is read from a capped part.
        start, head = -1, b""
        ds = read_dataset(inst, stop_before_pixels=True)
    else:
        with open(inst.path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            # pydicom stops with the file positioned at the Pixel Data element's tag.
            start = fh.tell()
            head = fh.read(12)
    if "Rows" not in ds or (ts != DeflatedExplicitVRLittleEndian and head[:4] != PIXEL_DATA):
        raise Problem(404, "Not Found", f"instance {inst.sop} has no Pixel Data, so no frames")
    if ts == ImplicitVRLittleEndian:
        offset, length = start + 8, int.from_bytes(head[4:8], "little")
    else:
        offset, length = start + 12, int.from_bytes(head[8:12], "little")
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 8)
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (bytes(ds.ExtendedOffsetTable), bytes(ds.ExtendedOffsetTableLengths))
    return PixelLayout(
        transfer_syntax=ts,
        value_offset=offset,
        value_length=length,
        frames=int(ds.get("NumberOfFrames") or 1),
        frame_bits=int(ds.Rows) * int(ds.Columns) * samples * bits,
        extended_offsets=extended,
    )


def check_numbers(inst: Stored, pixels: PixelLayout, numbers: list[int]) -> None:
    """Problem 404 naming the first frame number past the instance's frames."""
    for n in numbers:
        if n > pixels.frames:
            raise Problem(
                404,
                "Not Found",
                f"frame {n} does not exist: instance {inst.sop} has {pixels.frames} "
                f"frame{'s' if pixels.frames != 1 else ''}",
                frame=str(n),
            )


def _native_frame(fh: BinaryIO, pixels: PixelLayout, n: int) -> bytes:
    """Frame ``n`` of native Pixel Data. Frames of Bits Allocated 1 are packed without
    padding between them (PS3.5 8.1.1): one that starts mid-byte is shifted to start a
    byte, and its last byte padded with zero bits."""
    start_bit, end_bit = (n - 1) * pixels.frame_bits, n * pixels.frame_bits
    first, last = start_bit // 8, (end_bit + 7) // 8
    fh.seek(pixels.value_offset + first)
    data = fh.read(last - first)
    if start_bit % 8 == 0 and end_bit % 8 == 0:
        return data
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    skip = start_bit - first * 8
    return np.packbits(bits[skip : skip + pixels.frame_bits], bitorder="little").tobytes()


def _check_length(pixels: PixelLayout, numbers: list[int]) -> None:
    """Problem 422 if native Pixel Data ends before the last frame asked for (checked
    before the first part is sent)."""
    n = max(numbers)
    if (n * pixels.frame_bits + 7) // 8 > pixels.value_length:
        raise Problem(
            422,
            "Unprocessable Content",
            f"frame {n}: the Pixel Data is shorter than its image attributes say",
            frame=str(n),
        )


class _Fragments:
    """Where the fragments of each frame of encapsulated Pixel Data lie, found once per
    request: from the Extended Offset Table, else the Basic Offset Table (a frame's
    fragments run up to the next frame's offset), else one walk of the items' headers
    (one fragment per frame, or one frame of all of them; with more fragments than
    frames, a frame ends with the fragment whose last 10 bytes hold a JPEG end marker,
    as pydicom decides, so only those bytes of the fragments are read). pydicom's
    get_frame parses the table, or walks every fragment, for each frame it is asked
    for: frames² work for all of them."""

    def __init__(self, fh: BinaryIO, pixels: PixelLayout) -> None:
        self.fh, self.frames = fh, pixels.frames
        self.value_offset, self.extended = pixels.value_offset, pixels.extended_offsets
        self.starts: list[int] = []  # item of each frame's first fragment (file offsets)
        self.lengths: list[int] | None = None  # each frame's one fragment (Extended)
        self.single = False  # one frame of all the fragments
        self.counts: list[int] | None = None  # fragments of each frame (end markers)
        self.table = "Basic Offset Table"
        fh.seek(pixels.value_offset)
        basic = parse_basic_offsets(fh)
        first = fh.tell()  # the first fragment's item: the tables' offsets start here
        if self.extended:
            count = len(self.extended[0]) // 8
            self.starts = [first + o for o in struct.unpack(f"<{count}Q", self.extended[0])]
            count = len(self.extended[1]) // 8
            self.lengths = list(struct.unpack(f"<{count}Q", self.extended[1]))
            self.table = "Extended Offset Table"
        elif basic:
            self.starts = [first + o for o in basic]
        else:
            count, offsets = parse_fragments(fh)
            if count == self.frames:
                self.starts, self.lengths = offsets, None
                self.table = "fragments"
            elif self.frames == 1:
                self.starts, self.single = [first], True
            else:
                self.table = "fragments' end markers"
                self.starts, self.counts = _by_end_markers(fh, offsets)

    def frame(self, n: int) -> bytes:
        """The bytes of frame ``n`` (1-based), its fragments joined."""
        fh = self.fh
        if n > len(self.starts):
            raise ValueError(f"no frame {n} in the {self.table}")
        fh.seek(self.starts[n - 1])
        if self.lengths is not None:  # Extended Offset Table: one fragment, its length
            fh.seek(8, 1)
            data = fh.read(self.lengths[n - 1])
            if len(data) != self.lengths[n - 1]:
                raise EOFError("the Pixel Data ends inside the frame")
            return data
        if self.table == "fragments":
            return next(generate_fragments(fh))
        if self.counts is not None:
            fragments = generate_fragments(fh)
            return b"".join(next(fragments) for _ in range(self.counts[n - 1]))
        end = self.starts[n] if n < len(self.starts) and not self.single else None
        parts = []
        for fragment in generate_fragments(fh):
            parts.append(fragment)
            if end is not None and fh.tell() >= end:
                break
        if not parts:
            raise ValueError(f"no fragment at the offset of frame {n}")
        return b"".join(parts)


def _by_end_markers(fh: BinaryIO, items: list[int]) -> tuple[list[int], list[int]]:
    """(first item, number of fragments) of each frame of fragments ``items`` (their
    items' file offsets), a frame ending with the fragment whose last 10 bytes hold a
    JPEG EOI/EOC marker (pydicom's rule; fragments left after the last marker make one
    more frame)."""
    starts: list[int] = []
    counts: list[int] = []
    count = 0
    for item in items:
        fh.seek(item + 4)
        (length,) = struct.unpack("<L", fh.read(4))
        fh.seek(item + 8 + max(length - 10, 0))
        if count == 0:
            starts.append(item)
        count += 1
        if b"\xff\xd9" in fh.read(min(length, 10)):
            counts.append(count)
            count = 0
    if count:
        counts.append(count)
    return starts, counts


def _encapsulated_frame(fragments: _Fragments, n: int) -> bytes:
    try:
        return fragments.frame(n)
    except (ValueError, KeyError, IndexError, EOFError, StopIteration, struct.error) as err:
        raise Problem(
            422,
            "Unprocessable Content",
            f"frame {n} cannot be found in the encapsulated Pixel Data: {err}",
            frame=str(n),
        ) from None


def _deflated_frames(
    inst: Stored, pixels: PixelLayout, numbers: list[int], limit: int
) -> Iterator[bytes]:
    """Frames of a Deflated file: it cannot be seeked, so it is inflated in memory
    (Problem 406 beyond ``limit`` bytes)."""
    size = pixels.frames * pixels.frame_bits // 8
    if size > limit:
        raise Problem(
            406,
            "Not Acceptable",
            f"the instance is stored Deflated: its frames would take {size // 2**20} MB "
            f"inflated, more than http.max_decoded_mb ({limit // 2**20} MB)",
        )
    value = read_dataset(inst, cap=size + INFLATE_MAX).get("PixelData")
    if value is None:
        raise Problem(404, "Not Found", f"instance {inst.sop} has no Pixel Data, so no frames")
    inflated = PixelLayout(
        ExplicitVRLittleEndian, 0, len(value), pixels.frames, pixels.frame_bits, None
    )
    _check_length(inflated, numbers)
    buffer = io.BytesIO(value)
    for n in numbers:
        yield _native_frame(buffer, inflated, n)


def frame_bytes(
    inst: Stored, pixels: PixelLayout, numbers: list[int], limit: int
) -> Iterator[bytes]:
    """The bytes of each requested frame, read as they are sent. The first one is read
    (and native lengths checked) before this returns, so that bad pixel data answers a
    problem, not a cut response."""
    if pixels.transfer_syntax == DeflatedExplicitVRLittleEndian:
        frames = _deflated_frames(inst, pixels, numbers, limit)
    else:
        frames = _read_frames(inst, pixels, numbers)
    first = next(frames)

    def rest() -> Iterator[bytes]:
        yield first
        try:
            yield from frames
        except Problem as err:  # too late for a status: the response is cut
            log.error(
                "WADO-RS frames of instance %s of study %s: %s; response cut",
                inst.sop,
                inst.study,
                err.detail,
            )
            raise ResponseCut from None

    return rest()


class ResponseCut(Exception):
    """A streamed response that cannot be completed (already logged)."""


class FramesResponse(StreamingResponse):
    """A streamed multipart response that, on :class:`ResponseCut`, stops without its
    final message: the server then closes the connection, so the client sees a cut
    response, never a complete-looking one (and no traceback is logged)."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except ResponseCut:
            return


def _read_frames(inst: Stored, pixels: PixelLayout, numbers: list[int]) -> Iterator[bytes]:
    encapsulated = pixels.value_length == UNDEFINED
    if not encapsulated:
        _check_length(pixels, numbers)
    with open(inst.path, "rb") as fh:
        fragments = None
        if encapsulated:
            try:
                fragments = _Fragments(fh, pixels)
            except (ValueError, KeyError, IndexError, EOFError, struct.error) as err:
                raise Problem(
                    422,
                    "Unprocessable Content",
                    f"the encapsulated Pixel Data cannot be walked: {err}",
                ) from None
        for n in numbers:
            if fragments is not None:
                yield _encapsulated_frame(fragments, n)
            else:
                yield _native_frame(fh, pixels, n)


def multipart(frames: Iterator[bytes], media: str, ts: str, boundary: str) -> Iterator[bytes]:
    """The multipart/related body: one part per frame. Small frames go out together, up
    to :data:`BATCH` bytes at a time: each chunk of a streamed response costs a hop to
    and from a worker thread (0.1 ms), which cost more than finding a frame."""
    head = f"--{boundary}\r\nContent-Type: {media}; transfer-syntax={ts}\r\n\r\n".encode()
    batch: list[bytes] = []
    size = 0
    for data in frames:
        batch += (head, data, b"\r\n")
        size += len(head) + len(data) + 2
        if size >= BATCH:
            yield b"".join(batch)
            batch, size = [], 0
    batch.append(f"--{boundary}--\r\n".encode())
    yield b"".join(batch)
