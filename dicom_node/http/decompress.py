"""An encapsulated (compressed) instance decompressed for a WADO-RS retrieve in Explicit
or Implicit VR Little Endian (:mod:`.transcode`), produced as it is sent, one frame at
a time: each frame is decoded as WADO-RS frames decoded are (:mod:`.frames_decode`,
holding its share of ``http.max_decoded_mb`` until it is sent), so that the node holds
about one decoded frame, not the instance decoded, then re-encoded whole (5 times its
decoded size).

The dataset is the stored one as pydicom's ``Dataset.decompress`` leaves it: the
decoder's Photometric Interpretation (YBR_FULL and YBR_FULL_422 as RGB), Planar
Configuration 0, Pixel Data OB (Bits Allocated up to 8) or OW, padded to an even
length; but its SOP Instance UID is kept (the same instance in another transfer
syntax), frames of Bits Allocated 1 are packed one after the other (PS3.5 8.1.1;
pydicom's wrote a byte a pixel), and it is labelled as native pixels
(:func:`label_native`, as the conversions made in memory are). The elements after the
Pixel Data are re-encoded before the response starts (:func:`trailer`), so that those
that cannot be answer 422.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from itertools import chain

import numpy as np
from pydicom import Dataset, dcmwrite
from pydicom.filereader import read_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_node.http import fragments, frames
from dicom_node.http.frames_decode import Decoded, decoded_pixels
from dicom_node.http.problem import Problem
from dicom_node.http.wado import Stored

STREAMED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
MAX_LENGTH = 0xFFFFFFFE  # the longest value of a defined length
MAX_TRAILER = 16 << 20  # bytes of elements after the Pixel Data re-encoded (422 beyond)

# Elements only encapsulated Pixel Data may have (PS3.3 C.7.6.3).
ENCAPSULATION_ONLY = (
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "EncapsulatedPixelDataValueTotalLength",
)
# Syntaxes that are lossy whatever the codestream says, and their Lossy Image
# Compression Method (PS3.3 C.7.6.1.1.5.1).
LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",  # JPEG Extended
}


def streamed(inst: Stored, ts: str) -> bool:
    """Whether converting ``inst`` to ``ts`` is done here, one frame at a time."""
    return UID(inst.transfer_syntax).is_encapsulated and ts in STREAMED


def value_length(pixels: frames.PixelLayout) -> int:
    """Bytes of the native Pixel Data value, before its padding to an even length."""
    if _bits(pixels) == 1:
        return (pixels.frames * pixels.frame_bits + 7) // 8
    return pixels.frames * (pixels.frame_bits // 8)


def decompressed(inst: Stored, ts: str, limit: int, tail: bytes | None = None) -> Iterator[bytes]:
    """The instance in native syntax ``ts``, in pieces, ending with ``tail``: its
    :func:`trailer`, re-encoded before the response started (re-encoded here if None).
    The first frame is decoded before anything is yielded; a later frame that cannot be
    decoded, or decodes to another size than its header says, raises Problem 422 (the
    response is cut)."""
    pixels = frames.layout(inst)
    length = value_length(pixels)
    decoded = decoded_pixels(inst, pixels, list(range(1, pixels.frames + 1)), limit)
    first = next(decoded)
    yield _header(pixels, ts, first.photometric, length + length % 2)
    every = chain([first], decoded)
    if _bits(pixels) == 1:
        yield from _packed_bits(every, pixels.frame_bits)
    else:
        yield from _checked_frames(every, pixels.frame_bits // 8)
    if length % 2:
        yield b"\0"
    yield trailer(inst, ts) if tail is None else tail


def _bits(pixels: frames.PixelLayout) -> int:
    header = pixels.header
    return int(header.get("BitsAllocated") or 8) if header is not None else 8


def _wrong_size(n: int, got: int, size: int) -> Problem:
    """Problem 422: frame ``n`` decoded to ``got`` bytes, not ``size`` (the Pixel Data
    element's length was sent before the frames: the response is cut)."""
    return Problem(
        422,
        "Unprocessable Content",
        f"frame {n} decodes to {got} bytes, its attributes say {size}",
        frame=str(n),
    )


def _checked_frames(decoded: Iterator[Decoded], size: int) -> Iterator[bytes]:
    """The bytes of each frame, each checked to be ``size`` bytes long."""
    for n, frame in enumerate(decoded, 1):
        sent = 0
        for piece in [frame.data] if isinstance(frame.data, bytes) else frame.data:
            sent += len(piece)
            yield piece
        if sent != size:
            raise _wrong_size(n, sent, size)


def _packed_bits(decoded: Iterator[Decoded], frame_bits: int) -> Iterator[bytes]:
    """Frames of Bits Allocated 1, each packed from a byte boundary and checked to be
    as long as ``frame_bits`` bits, packed one after the other without padding between
    them (PS3.5 8.1.1), the last byte padded with zero bits."""
    size = (frame_bits + 7) // 8
    left = np.zeros(0, np.uint8)  # bits of the frames before, not yet a whole byte
    for n, frame in enumerate(decoded, 1):
        data = frame.data if isinstance(frame.data, bytes) else b"".join(frame.data)
        if len(data) != size:
            raise _wrong_size(n, len(data), size)
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[:frame_bits]
        bits = np.concatenate([left, bits])
        whole = len(bits) // 8 * 8
        yield np.packbits(bits[:whole], bitorder="little").tobytes()
        left = bits[whole:]
    if len(left):
        yield np.packbits(left, bitorder="little").tobytes()


def _header(pixels: frames.PixelLayout, ts: str, photometric: str, length: int) -> bytes:
    """The file up to the Pixel Data value: the stored header as decompressed, then the
    Pixel Data element's tag, VR (explicit syntax) and ``length``. Problem 422 if
    ``pixels`` holds no header (the response is cut, as for a frame that fails)."""
    ds = pixels.header
    if ds is None:  # frames.layout reads it; a layout without one has nothing to send
        raise Problem(
            422,
            "Unprocessable Content",
            "the instance's header was not read, so it cannot be sent decompressed",
        )
    label_native(ds, pixels.transfer_syntax)
    ds.PhotometricInterpretation = photometric
    if pixels.samples > 1:
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = ts
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    if ts == ImplicitVRLittleEndian:
        return out.getvalue() + struct.pack("<HHL", 0x7FE0, 0x0010, length)
    vr = b"OB" if _bits(pixels) <= 8 else b"OW"
    return out.getvalue() + struct.pack("<HH2s2xL", 0x7FE0, 0x0010, vr, length)


def label_native(ds: Dataset, stored: str) -> None:
    """``ds``, decompressed from syntax ``stored``, labelled as native pixels: without
    the elements only encapsulated Pixel Data may have, and with Lossy Image Compression
    "01" (its method added if absent) if ``stored`` is JPEG Baseline or Extended, lossy
    whatever the codestream. JPEG-LS near-lossless, JPEG 2000 and HTJ2K may hold a
    lossless codestream, which only decoding it tells: their stored attributes are kept
    as they are (pydicom's decompress keeps them all)."""
    for keyword in ENCAPSULATION_ONLY:
        if keyword in ds:
            delattr(ds, keyword)
    method = LOSSY_METHOD.get(stored)
    if method is not None:
        ds.LossyImageCompression = "01"
        if "LossyImageCompressionMethod" not in ds:
            ds.LossyImageCompressionMethod = method


def trailer(inst: Stored, ts: str) -> bytes:
    """The elements after the Pixel Data (trailing padding, digital signatures) encoded
    in native syntax ``ts``: the stored file's bytes past the Pixel Data's delimiter,
    read by pydicom. Problem 422 if they are more than :data:`MAX_TRAILER` bytes, or if
    pydicom cannot read or re-encode them."""
    pixels = frames.layout(inst)
    with open(inst.path, "rb") as fh:
        with fragments.walk_or_422():
            fh.seek(fragments.pixel_data_end(fh, pixels.value_offset))
        rest = fh.read(MAX_TRAILER + 1)
    if len(rest) > MAX_TRAILER:
        raise Problem(
            422,
            "Unprocessable Content",
            f"instance {inst.sop} has more than {MAX_TRAILER // 2**20} MB of elements after "
            "the Pixel Data: ask for it as stored (transfer-syntax=*)",
        )
    if not rest:
        return b""
    try:
        tail = read_dataset(io.BytesIO(rest), is_implicit_VR=False, is_little_endian=True)
        out = io.BytesIO()
        dcmwrite(out, tail, implicit_vr=ts == ImplicitVRLittleEndian, little_endian=True)
    except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on bad elements
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Problem(
            422,
            "Unprocessable Content",
            f"the elements after the Pixel Data of instance {inst.sop} cannot be sent "
            f"in {ts}: {reason}",
        ) from None
    return out.getvalue()
