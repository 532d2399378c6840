"""WADO-RS frames (PS3.18 section 10.4, "Retrieve Transaction", frame list resources).

``.../instances/{i}/frames/{list}`` answers ``multipart/related`` with one part per
requested frame, in the order asked. Frames are sent as stored: native (uncompressed)
frames, of Pixel Data or of Float or Double Float Pixel Data (Rows x Columns x Samples
x 4 or 8 bytes each), as ``application/octet-stream`` with Explicit VR Little Endian,
encapsulated frames as their compressed bitstream with the media type of the stored
transfer syntax (PS3.18 table 8.7.3-2: :mod:`.frames_accept`), or, when asked for so,
decoded (:mod:`.frames_decode`). Only the bytes of the requested frames are read: the
header up to Pixel Data, then a seek to each frame (for encapsulated data, through the
Basic or Extended Offset Table, or the fragment items' headers, read once per request);
a frame over a megabyte, native or encapsulated, is read a megabyte at a time as sent.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

import numpy as np
import pydicom
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from starlette.responses import StreamingResponse
from starlette.types import Send

from dicom_node.http.budget import DECODING
from dicom_node.http.fragments import (  # re-exported
    MAX_FRAGMENTS,
    Fragments,
    frame_spans,
    walk_or_422,
)
from dicom_node.http.frames_accept import (  # re-exported: the routes use them as frames.*
    OCTET,
    negotiate,
    parse_frame_list,
)
from dicom_node.http.problem import Problem
from dicom_node.http.wado import (
    Stored,
    check_files,
    pixel_data_at,
    read_dataset,
    whole_number,
)
from dicom_node.index.header import INFLATE_MAX
from dicom_node.store.check import StructureError

__all__ = [
    "MAX_FRAGMENTS",
    "OCTET",
    "FramesResponse",
    "Part",
    "PixelLayout",
    "check_numbers",
    "frame_bytes",
    "Fragments",
    "layout",
    "multipart",
    "native_frame",
    "negotiate",
    "parse_frame_list",
]

log = logging.getLogger(__name__)

PIXEL_DATA = 0x7FE00010
FLOAT_SYNTAXES = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
UNDEFINED = 0xFFFFFFFF
BATCH = 1 << 20  # bytes of frames sent together
CHUNK = 1 << 20  # bytes of a large native frame read at a time


@dataclass(frozen=True)
class PixelLayout:
    """Where the Pixel Data of a file lies and how its frames are laid out."""

    transfer_syntax: str
    value_offset: int  # file offset of the value (or of its first item, encapsulated)
    value_length: int  # UNDEFINED when encapsulated
    frames: int
    frame_bits: int  # bits per native frame
    extended_offsets: tuple[bytes, bytes] | None
    rows: int = 0
    columns: int = 0
    samples: int = 1
    header: pydicom.Dataset | None = field(default=None, compare=False, repr=False)


def layout(inst: Stored) -> PixelLayout:
    """The instance's pixel layout from its header; Problem 404 if it has no Pixel
    Data."""
    check_files([inst])
    ts = inst.transfer_syntax
    if ts == DeflatedExplicitVRLittleEndian:  # positions are in the inflated stream
        # pydicom would inflate the whole file: its header is read from a capped part.
        offset, length = -1, 0  # none in the file: its frames are read inflated
        ds = read_dataset(inst, stop_before_pixels=True)
    else:
        try:
            found = pixel_data_at(inst)
        except StructureError as err:
            raise Problem(
                422, "Unprocessable Content", f"the stored dataset cannot be walked: {err}"
            ) from None
        ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        if found is None or found.offset == -1:
            offset, length = -1, -1
        else:  # Pixel Data, or Float or Double Float Pixel Data (native only)
            offset, length = found.offset, found.length
            if found.tag != PIXEL_DATA and ts not in FLOAT_SYNTAXES:
                msg = f"instance {inst.sop} has float pixels, never encapsulated, in {ts}"
                raise Problem(422, "Unprocessable Content", msg)
    if "Rows" not in ds or length == -1:
        raise Problem(404, "Not Found", f"instance {inst.sop} has no Pixel Data, so no frames")
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 8)
    # Uncompressed YBR_FULL_422 holds two samples' worth per pixel: each two pixels'
    # Y Y share one Cb Cr (PS3.3 C.7.6.3.1.2); decoded, a frame has all three.
    stored_samples = samples
    if samples == 3 and ds.get("PhotometricInterpretation") == "YBR_FULL_422":
        stored_samples = 3 if UID(ts).is_compressed else 2
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (bytes(ds.ExtendedOffsetTable), bytes(ds.ExtendedOffsetTableLengths))
    return PixelLayout(
        transfer_syntax=ts,
        value_offset=offset,
        value_length=length,
        frames=max(whole_number(ds, "NumberOfFrames"), 1),
        frame_bits=int(ds.Rows) * int(ds.Columns) * stored_samples * bits,
        extended_offsets=extended,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples=samples,
        header=ds,
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


def native_frame(fh: BinaryIO, pixels: PixelLayout, n: int) -> bytes | Iterator[bytes]:
    """Frame ``n`` of native Pixel Data: its bytes, or for a frame over :data:`BATCH`
    bytes its pieces, read as they are sent (a 512 MB frame read whole, then joined
    into its part, grew the node by 2.4 GB). Frames of Bits Allocated 1 are packed
    without padding between them (PS3.5 8.1.1): one that starts mid-byte is shifted to
    start a byte, and its last byte padded with zero bits."""
    pieces = _native_pieces(fh, pixels, n)
    if (pixels.frame_bits + 7) // 8 > BATCH:
        return pieces
    return b"".join(pieces)


def _native_pieces(fh: BinaryIO, pixels: PixelLayout, n: int) -> Iterator[bytes]:
    start_bit = (n - 1) * pixels.frame_bits
    first, skip = start_bit // 8, start_bit % 8
    left = (pixels.frame_bits + 7) // 8  # bytes out
    tail_bits = pixels.frame_bits % 8  # bits used in the last byte out (0: all)
    fh.seek(pixels.value_offset + first)
    carry = b""
    while left > 0:
        take = min(CHUNK, left)
        data = carry + fh.read(take + (1 if skip else 0) - len(carry))
        if skip:  # each byte out: the high bits of one byte and the low bits of the next
            data = data.ljust(take + 1, b"\0")
            raw = np.frombuffer(data, np.uint8)
            out = ((raw[:-1] >> skip) | (raw[1:] << (8 - skip))).astype(np.uint8)
            carry = data[-1:]
            piece = out.tobytes()
        else:
            piece = data
            if len(piece) < take:
                raise EOFError("the Pixel Data ends inside the frame")
        left -= take
        if left == 0 and tail_bits:
            piece = piece[:-1] + bytes([piece[-1] & ((1 << tail_bits) - 1)])
        yield piece


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
    DECODING.admit()
    try:
        hold = DECODING.hold(size + INFLATE_MAX, limit)
        hold.__enter__()
    except TimeoutError as err:
        raise Problem(503, "Service Unavailable", f"busy inflating others: {err}") from None
    value = None
    try:  # the inflated bytes count against the limit with every decode in flight
        value = _pixel_value(read_dataset(inst, cap=size + INFLATE_MAX))
        if value is None:
            raise Problem(404, "Not Found", f"instance {inst.sop} has no Pixel Data, so no frames")
        inflated = PixelLayout(
            ExplicitVRLittleEndian, 0, len(value), pixels.frames, pixels.frame_bits, None
        )
        _check_length(inflated, numbers)
        buffer = io.BytesIO(value)
        for n in numbers:
            yield native_frame(buffer, inflated, n)
    finally:
        value = None
        hold.__exit__(None, None, None)


def _pixel_value(ds: pydicom.Dataset) -> bytes | None:
    """The value of the Pixel Data, Float or Double Float Pixel Data of ``ds``."""
    keywords = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    return next((ds[k].value for k in keywords if k in ds), None)


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
    return started(frames, inst, "frames")


T = TypeVar("T")


def started(items: Iterator[T], inst: Stored, what: str) -> Iterator[T]:
    """``items`` with the first one taken now, so that its problems answer before the
    response starts; a Problem after it cuts the response, logged in one line."""
    first = next(items)

    def rest() -> Iterator[T]:
        yield first
        try:
            yield from items
        except Problem as err:  # too late for a status: the response is cut
            log.error(
                "WADO-RS %s of instance %s of study %s: %s; response cut",
                what,
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
    response, never a complete-looking one (and no traceback is logged).

    However it ends (complete, cut, or the client gone), its body's generator is closed
    at once, so that what it holds (an open file, its share of the decode budget) is
    given back then: left to the garbage collector, a client leaving mid-frame kept a
    64 MB decode's share for 12 s, and every other decode waited."""

    def __init__(self, content: Iterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.source = content

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except ResponseCut:
            return
        finally:
            # Not running: a cancelled read of the next chunk waits for its thread.
            with suppress(ValueError):
                close = getattr(self.source, "close", None)
                if close is not None:
                    close()


def _read_frames(inst: Stored, pixels: PixelLayout, numbers: list[int]) -> Iterator[bytes]:
    encapsulated = pixels.value_length == UNDEFINED
    if not encapsulated:
        _check_length(pixels, numbers)
    with open(inst.path, "rb") as fh:
        fragments = None
        if encapsulated:
            with walk_or_422():
                fragments = Fragments(fh, pixels)
        for n in numbers:
            if fragments is not None:
                yield _encapsulated_frame(fragments, n)
            else:
                yield native_frame(fh, pixels, n)


def _encapsulated_frame(fragments: Fragments, n: int) -> bytes | Iterator[bytes]:
    """Frame ``n`` of encapsulated Pixel Data: its bytes, or for a frame over
    :data:`BATCH` bytes its pieces, read from its fragments as they are sent (a 128 MB
    frame of 512 fragments, joined, then copied into its part, grew the node by 762
    MB). Problem 422 now if its fragments cannot be found."""
    spans = frame_spans(fragments, n)
    if sum(length for _, length in spans) <= BATCH:
        return fragments.read(spans)
    return _pieces(fragments.fh, spans)


def _pieces(fh: BinaryIO, spans: list[tuple[int, int]]) -> Iterator[bytes]:
    """The bytes at ``spans`` (file offset, length) of ``fh``, :data:`CHUNK` at a time
    (small fragments gathered into one piece)."""
    piece = bytearray()
    for offset, length in spans:
        fh.seek(offset)
        while length > 0:
            data = fh.read(min(length, CHUNK - len(piece)))
            if not data:
                raise EOFError("the Pixel Data ends inside the frame")
            piece += data
            length -= len(data)
            if len(piece) == CHUNK:
                yield bytes(piece)
                piece.clear()
    if piece:
        yield bytes(piece)


@dataclass(frozen=True)
class Part:
    """A frame with header lines of its own (each ending CRLF) after its Content-Type."""

    data: bytes | Iterator[bytes]
    headers: str


def multipart(
    frames: Iterator[bytes | Iterator[bytes] | Part], media: str, ts: str, boundary: str
) -> Iterator[bytes]:
    """The multipart/related body: one part per frame. Small frames go out together, up
    to :data:`BATCH` bytes at a time: each chunk of a streamed response costs a hop to
    and from a worker thread (0.1 ms), which cost more than finding a frame. A large
    frame comes in pieces and goes out as they are read."""
    plain = f"--{boundary}\r\nContent-Type: {media}; transfer-syntax={ts}\r\n"
    same = (plain + "\r\n").encode()
    batch: list[bytes] = []
    size = 0
    for data in frames:
        head = same
        if isinstance(data, Part):
            head, data = (plain + data.headers + "\r\n").encode(), data.data
        if not isinstance(data, bytes):
            yield b"".join([*batch, head])
            yield from data
            batch, size = [b"\r\n"], 2
            continue
        batch += (head, data, b"\r\n")
        size += len(head) + len(data) + 2
        if size >= BATCH:
            yield b"".join(batch)
            batch, size = [], 0
    batch.append(f"--{boundary}--\r\n".encode())
    yield b"".join(batch)
