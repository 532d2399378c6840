"""WADO-RS frames decoded: the frames of an encapsulated (compressed) instance sent as
native Explicit VR Little Endian bytes, for a client that asks for
``application/octet-stream`` without a transfer syntax (PS3.18 8.7.3: its default) or
with ``1.2.840.10008.1.2.1`` (negotiated in :mod:`.frames_accept`).

Only the requested frames are decoded, one after the other, each as it is sent: its
bitstream is found as for frames sent as stored (:mod:`.fragments`, the offset tables
read once per request) and decoded by pydicom's pixel decoder for the stored syntax
(pylibjpeg's libjpeg, openjpeg and RLE plugins, pyjpegls), exactly as
``pydicom.pixels.pixel_array(path, index=n - 1)`` decodes it. Each part holds the frame
as a native Pixel Data frame of what pydicom returns: samples interleaved (Planar
Configuration 0), YBR_FULL and YBR_FULL_422 converted to RGB (as are JPEG 2000's
YBR_ICT and YBR_RCT by the decoder), Bits Allocated as stored, little endian; its
``Content-Description`` header says which Photometric Interpretation that is. The
bytes are those of the same frame in the instance retrieved decompressed
(``application/dicom; transfer-syntax=1.2.840.10008.1.2.1``), whose dataset says so.

Memory: each frame's decode holds its share of ``http.max_decoded_mb`` with every
other decode in flight (:mod:`.budget`) while it is decoded and sent; a frame larger
than the limit alone is refused (406) from the header, and a codestream that declares
another size than the header is refused (422) before any decoder runs
(:mod:`.codestream`). The first frame is decoded before the response starts, so that
its problems answer problem JSON; a later frame that cannot be decoded cuts the
response (one log line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels import as_pixel_options, get_decoder
from pydicom.uid import UID

from dicom_node.http import codestream
from dicom_node.http.budget import DECODING
from dicom_node.http.frames import (
    BATCH,
    CHUNK,
    UNDEFINED,
    Part,
    PixelLayout,
    frame_bytes,
    started,
)
from dicom_node.http.problem import Problem
from dicom_node.http.wado import Stored
from dicom_node.memory import release_free_memory


def _demote(record: logging.LogRecord) -> bool:
    """pydicom logs each decoding plugin's failure with its traceback at ERROR before
    raising: the node logs one line per frame that cannot be decoded, the tracebacks go
    to DEBUG."""
    if record.levelno > logging.DEBUG:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return True


logging.getLogger("pydicom.pixels.decoders.base").addFilter(_demote)

# Bytes a frame's decode holds at its peak per byte of the decoded frame (tracemalloc,
# 2048² frames): 2.8-3.5 for JPEG-LS, JPEG 2000 and RLE (encoded frame, decoder output,
# the array, its bytes); 9 for YBR_FULL(_422), which pydicom converts to RGB in floats.
# Peak RSS of one 3000² colour frame: 3.7 RLE RGB, 8.7 RLE YBR_FULL, 9.0 JPEG 422.
HELD_PER_BYTE = 4
HELD_PER_BYTE_YBR = 9
TRIM_AFTER = 64 << 20  # budget bytes of a decode after which the heap is trimmed


def decoded_size(pixels: PixelLayout) -> int:
    """Bytes of one decoded frame (from the header)."""
    bits = int(pixels.header.get("BitsAllocated") or 8) if pixels.header is not None else 8
    return pixels.rows * pixels.columns * pixels.samples * max(bits, 8) // 8


@dataclass(frozen=True)
class Decoded:
    """One frame decoded: native bytes (or their pieces), in ``photometric``."""

    data: bytes | Iterator[bytes]
    photometric: str


def decoded_frames(
    inst: Stored, pixels: PixelLayout, numbers: list[int], limit: int
) -> Iterator[Part]:
    """Frames ``numbers`` of ``inst`` decoded, one part each, decoded as they are sent
    (:func:`decoded_pixels`)."""
    ts, samples = pixels.transfer_syntax, pixels.samples
    decoded = decoded_pixels(inst, pixels, numbers, limit)
    return (Part(d.data, _description(ts, d.photometric, samples)) for d in decoded)


def decoded_pixels(
    inst: Stored, pixels: PixelLayout, numbers: list[int], limit: int
) -> Iterator[Decoded]:
    """Frames ``numbers`` of ``inst`` decoded, each held within the shared budget until
    the next is asked for. The first is decoded before this returns: Problem 406 if a
    frame would take more than ``limit`` bytes decoded, 422 if it cannot be found or
    decoded, 503 if the decodes waiting for room are too many."""
    ts = pixels.transfer_syntax
    header = pixels.header
    if header is None or pixels.value_length != UNDEFINED:
        raise Problem(
            422,
            "Unprocessable Content",
            f"instance {inst.sop} is labelled {ts} but its Pixel Data is not encapsulated",
        )
    size = decoded_size(pixels)
    if size > limit:
        raise Problem(
            406,
            "Not Acceptable",
            f"a frame of instance {inst.sop} takes {size // 2**20} MB decoded, more than "
            f"http.max_decoded_mb ({limit // 2**20} MB): ask for the frames as stored "
            "(transfer-syntax=*)",
            available=[ts],
        )
    ybr = str(header.get("PhotometricInterpretation", "")).startswith("YBR_FULL")
    held = size * (HELD_PER_BYTE_YBR if ybr else HELD_PER_BYTE)
    decode = _decoder(inst, pixels)
    DECODING.admit()
    encoded = frame_bytes(inst, pixels, numbers, limit)  # first frame read: 422 now
    frames = _held(zip(numbers, encoded, strict=True), decode, held, limit)
    return started(frames, inst, "decoded frames")


def _held(
    numbered: Iterator[tuple[int, bytes | Iterator[bytes]]],
    decode: Callable[[int, bytes | Iterator[bytes]], Decoded],
    held: int,
    limit: int,
) -> Iterator[Decoded]:
    """Each frame decoded within the shared budget, held until the frame is sent."""
    for n, data in numbered:
        try:
            with DECODING.hold(held, limit):
                frame = decode(n, data)
                yield frame
                del frame
            if held >= TRIM_AFTER:
                # The decoder's freed buffers stay resident in glibc's heap otherwise:
                # 8 concurrent requests of a 64 MB frame grew the node by 629 MB, 375
                # MB trimmed (935-1130 MB without the shared budget).
                release_free_memory()
        except TimeoutError as err:
            raise Problem(
                503,
                "Service Unavailable",
                f"busy decoding others: {err}",
                headers={"Retry-After": "5"},
            ) from None


def _decoder(
    inst: Stored, pixels: PixelLayout
) -> Callable[[int, bytes | Iterator[bytes]], Decoded]:
    """A function decoding one frame's bitstream into its part."""
    header = pixels.header
    ts = pixels.transfer_syntax
    try:
        decoder = get_decoder(UID(ts))
        options: dict[str, Any] = as_pixel_options(header, number_of_frames=1)
    except (NotImplementedError, ValueError, TypeError) as err:
        raise Problem(
            422, "Unprocessable Content", f"instance {inst.sop} cannot be decoded: {err}"
        ) from None
    options.pop("extended_offsets", None)
    bits = int(options.get("bits_allocated") or 8)

    def decode(n: int, stored: bytes | Iterator[bytes]) -> Decoded:
        data = stored if isinstance(stored, bytes) else b"".join(stored)  # a large one's pieces
        # No decoder allocates what a codestream says past the header (422).
        codestream.check_frames([(n, data)], ts, pixels.rows, pixels.columns, pixels.samples)
        try:
            arr, meta = decoder.as_array(encapsulate([data]), index=0, **options)
        except Exception as err:  # noqa: BLE001 - decoders raise many kinds on bad data
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise Problem(
                422,
                "Unprocessable Content",
                f"frame {n} cannot be decoded: {reason}",
                frame=str(n),
            ) from None
        del data
        photometric = meta.get("photometric_interpretation", "")
        return Decoded(_native(arr, bits), str(getattr(photometric, "value", photometric)))

    return decode


def _native(arr: np.ndarray, bits: int) -> bytes | Iterator[bytes]:
    """The frame as native Pixel Data lays it out: little endian, 1-bit samples packed;
    its bytes, or pieces of them for a frame over :data:`BATCH` bytes."""
    if bits == 1:
        return np.packbits(arr.ravel(), bitorder="little").tobytes()
    arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
    view = memoryview(arr).cast("B")
    if len(view) <= BATCH:
        return view.tobytes()

    def pieces() -> Iterator[bytes]:
        for at in range(0, len(view), CHUNK):
            yield view[at : at + CHUNK].tobytes()

    return pieces()


def _description(ts: str, photometric: str, samples: int) -> str:
    """The part's ``Content-Description`` header line: what the bytes are."""
    text = f"decoded from {ts}; PhotometricInterpretation={photometric}"
    if samples > 1:
        text += "; PlanarConfiguration=0"
    return f"Content-Description: {text}\r\n"
