"""The transfer syntax a WADO-RS retrieve sends each instance in (PS3.18 8.7.3), and the
conversion when it is not the stored one.

``transfer-syntax=*``, or the stored syntax, sends the file as stored, streamed. No
syntax named means Explicit VR Little Endian. The node converts between the native
little-endian syntaxes (Implicit VR, Explicit VR, Deflated Explicit VR) and decompresses
an encapsulated instance when a pixel decoder in its environment handles the stored
syntax (pydicom's, and the pylibjpeg / pyjpegls plugins: JPEG, JPEG-LS, JPEG 2000,
HTJ2K, RLE). Decompressing to Explicit or Implicit VR LE is done one frame at a time
as it is sent (:mod:`.decompress`), each frame within ``http.max_decoded_mb``; any
other conversion is made in memory, one instance at a time, within that limit. Any
other syntax answers 406 naming those the instance is available in, before any byte
of the response is sent.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from functools import cache
from itertools import chain

from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicom_node.http import codestream, decompress, frames, frames_decode
from dicom_node.http.budget import DECODING
from dicom_node.http.frames import ResponseCut
from dicom_node.http.links import uid_path
from dicom_node.http.problem import Problem
from dicom_node.http.wado import (
    CHUNK,
    Stored,
    decoded_bytes,
    inflate_dataset,
    read_dataset,
)
from dicom_node.http.wado_accept import DICOM
from dicom_node.index.header import INFLATE_MAX

log = logging.getLogger(__name__)

# What the node converts to, in the order it prefers when several are accepted.
NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)


@cache
def decodable(ts: str) -> bool:
    """Whether a pixel decoder in this environment decodes ``ts`` (an encapsulated
    syntax)."""
    try:
        return bool(get_decoder(UID(ts)).is_available)
    except (NotImplementedError, ValueError):
        return False


def available(stored: str) -> list[str]:
    """The transfer syntaxes an instance stored in ``stored`` can be sent in: as
    stored, then the native ones it converts to."""
    convertible = stored in NATIVE or (UID(stored).is_encapsulated and decodable(stored))
    return [stored, *(ts for ts in NATIVE if ts != stored and convertible)]


def target(stored: str, syntaxes: set[str] | None) -> str | None:
    """The syntax to send an instance stored in ``stored`` in, of those accepted
    (``None``: any); None if it is available in none of them."""
    if syntaxes is None or stored in syntaxes:
        return stored
    return next((ts for ts in available(stored) if ts in syntaxes), None)


def _deflated_cap(inst: Stored) -> int:
    """What a Deflated instance may inflate to: its pixels, and room for the rest."""
    return decoded_bytes(inst) + INFLATE_MAX


def check_convertible(
    instances: list[Stored], syntaxes: set[str] | None, limit: int
) -> dict[Stored, bytes]:
    """Problem 406 if an instance is available in none of the accepted syntaxes, or if
    converting it would take more than ``limit`` bytes of decoded pixels. Returns the
    elements after the Pixel Data of the instances :mod:`.decompress` streams,
    re-encoded here (422 if they cannot be) for :func:`multipart` to send: at most
    :data:`.decompress.MAX_TRAILER` bytes of them per response (any past that are
    re-encoded again when sent, so that a study of many does not hold them all)."""
    trailers: dict[Stored, bytes] = {}
    kept = 0
    for inst in instances:
        ts = target(inst.transfer_syntax, syntaxes)
        if ts is None:
            offered = available(inst.transfer_syntax)
            raise Problem(
                406,
                "Not Acceptable",
                f"instance {inst.sop} is stored as {inst.transfer_syntax}; this node can "
                f"send it as {', '.join(offered)} (transfer-syntax=* for as stored)",
                available=offered,
            )
        if ts == inst.transfer_syntax:
            continue
        DECODING.admit()
        size, what = _decoded_at_once(inst, ts)
        if size > limit:
            raise Problem(
                406,
                "Not Acceptable",
                f"instance {inst.sop}: {what} would take {size // 2**20} MB decoded, more "
                f"than http.max_decoded_mb ({limit // 2**20} MB): ask for it as stored "
                "(transfer-syntax=*)",
                available=[inst.transfer_syntax],
            )
        # No decoder allocates more than the header says nor passes over the image too
        # many times: checked before the response starts (a 422 later is a cut).
        codestream.check_instance(inst)
        if decompress.streamed(inst, ts):
            tail = decompress.trailer(inst, ts)  # sent after the pixels: checked now (422)
            if kept + len(tail) <= decompress.MAX_TRAILER:
                trailers[inst] = tail
                kept += len(tail)
        if inst.transfer_syntax == DeflatedExplicitVRLittleEndian:
            # Checked before the response starts (a 422 once streaming is too late).
            inflate_dataset(inst, _deflated_cap(inst), whole=True, keep=False)
    return trailers


def _decoded_at_once(inst: Stored, ts: str) -> tuple[int, str]:
    """Bytes of decoded pixels converting ``inst`` to ``ts`` holds at once (one frame
    when :mod:`.decompress` streams it), and what they are; Problem 406 if its native
    Pixel Data would be longer than a value can be (4 GB)."""
    if not decompress.streamed(inst, ts):
        return decoded_bytes(inst), "it"
    pixels = frames.layout(inst)
    length = decompress.value_length(pixels)
    if length > decompress.MAX_LENGTH:
        raise Problem(
            406,
            "Not Acceptable",
            f"instance {inst.sop} would take {length // 2**20} MB decoded, more than a "
            "native Pixel Data value holds: ask for it as stored (transfer-syntax=*)",
            available=[inst.transfer_syntax],
        )
    return frames_decode.decoded_size(pixels), "a frame of it"


def converted(inst: Stored, ts: str) -> memoryview:
    """The instance in native syntax ``ts`` (decompressed if need be); a view of the
    encoded buffer, not a copy of it."""
    ds = read_dataset(inst, cap=_deflated_cap(inst))  # size checked by check_convertible
    stored = ds.file_meta.TransferSyntaxUID
    if stored.is_compressed and "PixelData" in ds:
        ds.decompress(generate_instance_uid=False)  # the same instance, another syntax
        decompress.label_native(ds, stored)  # pydicom's keeps the encapsulation's elements
    ds.file_meta.TransferSyntaxUID = ts
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    del ds  # its decoded Pixel Data, before the caller sends the encoded copy
    return out.getbuffer()


# Bytes a conversion made in memory holds at its peak per byte of decoded pixels
# (decoder output, the Pixel Data, the encoded file): +307 MB for a 64 MB JPEG. The
# shared budget counts them, so that http.max_decoded_mb is about what the decodes in
# flight hold.
HELD_PER_BYTE = 5


def _converted_pieces(inst: Stored, ts: str, limit: int, trailer: bytes | None) -> Iterator[bytes]:
    """The instance converted to ``ts``: one frame at a time (:mod:`.decompress`, ending
    with ``trailer`` if :func:`check_convertible` kept it), or made whole in memory
    within the shared budget; Problem 422 if its pixels cannot be decoded."""
    if decompress.streamed(inst, ts):
        yield from decompress.decompressed(inst, ts, limit, trailer)
        return
    with DECODING.hold(HELD_PER_BYTE * decoded_bytes(inst), limit):
        try:
            data = converted(inst, ts)
        except Exception as err:  # noqa: BLE001 - decoders raise many kinds on bad data
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise Problem(
                422,
                "Unprocessable Content",
                f"instance {inst.sop} cannot be converted to {ts}: {reason.strip()}",
            ) from None
        for at in range(0, len(data), CHUNK):
            yield bytes(data[at : at + CHUNK])
        del data


def _pieces(
    inst: Stored, syntaxes: set[str] | None, limit: int, trailer: bytes | None
) -> Iterator[bytes]:
    """The instance's bytes in the syntax it is sent in: the file as stored, or
    converted (with ``trailer``, its elements after the Pixel Data, if already made)."""
    ts = target(inst.transfer_syntax, syntaxes) or ExplicitVRLittleEndian
    if ts == inst.transfer_syntax:
        with open(inst.path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
    else:
        yield from _converted_pieces(inst, ts, limit, trailer)


def multipart(
    instances: list[Stored],
    syntaxes: set[str] | None,
    boundary: str,
    limit: int = 1 << 30,
    trailers: Mapping[Stored, bytes] | None = None,
) -> Iterator[bytes]:
    """The multipart body, produced as it is sent (:func:`check_convertible` first,
    whose ``trailers`` it sends). Conversions share ``limit`` bytes of decoded pixels
    with every other in the process (:mod:`.budget`). The first instance's first piece
    is made before this returns (its first frame decoded, or its conversion made in
    memory), so that its problems answer before the response starts (422, 503); a later
    one's cut it (they were a cut 200, or a traceback, for the first too)."""
    trailers = trailers or {}
    pieces = _pieces(instances[0], syntaxes, limit, trailers.get(instances[0]))
    try:
        first = next(pieces, b"")
    except TimeoutError as err:
        raise Problem(
            503, "Service Unavailable", f"busy decoding others: {err}", {"Retry-After": "5"}
        ) from None
    return _parts(instances, syntaxes, boundary, limit, chain([first], pieces), trailers)


def _parts(
    instances: list[Stored],
    syntaxes: set[str] | None,
    boundary: str,
    limit: int,
    first: Iterator[bytes],
    trailers: Mapping[Stored, bytes],
) -> Iterator[bytes]:
    """Each instance as a part, the first from ``first``."""
    for k, inst in enumerate(instances):
        ts = target(inst.transfer_syntax, syntaxes) or ExplicitVRLittleEndian
        yield (
            f"--{boundary}\r\nContent-Type: {DICOM}; transfer-syntax={ts}\r\n"
            f"Content-Location: {uid_path(inst.study, inst.series, inst.sop)}\r\n\r\n"
        ).encode()
        try:
            if k == 0:
                yield from first
            else:
                yield from _pieces(inst, syntaxes, limit, trailers.get(inst))
        except (TimeoutError, Problem) as err:  # too late for a status
            log.error(
                "WADO-RS retrieve of instance %s of study %s: %s; response cut",
                inst.sop,
                inst.study,
                getattr(err, "detail", err),
            )
            raise ResponseCut from None
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()
