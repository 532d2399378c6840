"""WADO-RS (PS3.18 section 10.4): retrieve instances, metadata, bulk data and renderings.

Instances are found through the index and streamed from their files: a study of any size
goes out as ``multipart/related; type="application/dicom"`` a megabyte at a time, in the
transfer syntax :mod:`.transcode` picks (as stored, or converted one instance at a
time). Bulk data: :mod:`.bulk`; frames: :mod:`.frames`.
"""

from __future__ import annotations

import io
import logging
import math
import os
import uuid
import zlib
from dataclasses import dataclass
from email.message import Message
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from sqlalchemy import select

from dicom_node.http.budget import DECODING
from dicom_node.http.links import uid_path
from dicom_node.http.problem import Problem
from dicom_node.http.results import catalogue
from dicom_node.index.header import INFLATE_MAX, dataset_offset
from dicom_node.store.check import StructureError, TooManyElements, count_within

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DICOM = "application/dicom"
JSON_MEDIA = ("application/dicom+json", "application/json", "application/*", "*/*")


@dataclass(frozen=True)
class Stored:
    """One stored instance as the index knows it."""

    study: str
    series: str
    sop: str
    path: str
    transfer_syntax: str
    rows: int | None
    frames: int | None


def find(
    session: Any, study: str, series: str | None = None, sop: str | None = None
) -> list[Stored]:
    """The stored instances of a study, series or one instance; Problem 404 if none."""
    src = catalogue()  # received instances and the node's results
    stmt = select(
        src.c.study_uid,
        src.c.series_uid,
        src.c.sop_instance_uid,
        src.c.path,
        src.c.transfer_syntax,
        src.c.rows,
        src.c.number_of_frames,
    ).where(src.c.study_uid == study)
    if series is not None:
        stmt = stmt.where(src.c.series_uid == series)
    if sop is not None:
        stmt = stmt.where(src.c.sop_instance_uid == sop)
    rows = [
        Stored(*r)
        for r in session.execute(
            stmt.order_by(src.c.series_uid, src.c.instance_number, src.c.sop_instance_uid)
        )
    ]
    if not rows:
        what = "instance" if sop else "series" if series else "study"
        raise Problem(404, "Not Found", f"no such {what} in this node's store")
    return rows


def check_files(instances: list[Stored]) -> None:
    """Problem 404 if the file of an indexed instance is gone (removed behind the node's
    back): checked before a response starts, so that it is never cut off midway."""
    missing = [i for i in instances if not os.path.exists(i.path)]
    if missing:
        log.error(
            "WADO-RS: %d indexed file(s) missing from the store, e.g. %s of study %s",
            len(missing),
            missing[0].path,
            missing[0].study,
        )
        raise Problem(
            404,
            "Not Found",
            f"the file of instance {missing[0].sop} is missing from the store"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
        )


MAX_ELEMENTS = [500_000]  # http.max_header_elements, set from the configuration per request


def check_header(inst: Stored) -> None:
    """Problem 422 if the instance holds more than http.max_header_elements elements
    before its Pixel Data, counted by the receive path's walk (headers only) before
    pydicom reads any: 5 MB of empty elements took 324 MB and 11 s as pydicom objects
    and their JSON, at every read of the header (metadata, frames, renderings)."""
    most = MAX_ELEMENTS[0]
    try:
        count_within(inst.path, inst.transfer_syntax, most)
    except TooManyElements:
        raise Problem(
            422,
            "Unprocessable Content",
            f"instance {inst.sop} holds more than http.max_header_elements ({most}) "
            "elements: this node does not read its header",
        ) from None
    except (StructureError, OSError):
        pass  # read as before: pydicom answers what it can


def read_dataset(
    inst: Stored, stop_before_pixels: bool = False, cap: int = 1 << 30
) -> pydicom.Dataset:
    """The instance's dataset (up to Pixel Data with ``stop_before_pixels``); Problem
    404 if its file is missing. A Deflated one is inflated here, never by pydicom (which
    inflates the whole file, and a few MB can inflate to gigabytes): its header from at
    most the first :data:`INFLATE_MAX` bytes, all of it only if it inflates to at most
    ``cap`` bytes (Problem 422 otherwise); its File Meta then says Explicit VR LE."""
    try:
        if inst.transfer_syntax != DeflatedExplicitVRLittleEndian:
            check_header(inst)
            return pydicom.dcmread(inst.path, stop_before_pixels=stop_before_pixels)
        cap = INFLATE_MAX if stop_before_pixels else cap
        data = inflate_dataset(inst, cap, whole=not stop_before_pixels)
    except FileNotFoundError:
        check_files([inst])
        raise
    try:
        ds = pydicom.dcmread(data, stop_before_pixels=stop_before_pixels, force=True)
    except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on garbage
        raise Problem(
            422, "Unprocessable Content", f"the Deflated dataset cannot be read: {err}"
        ) from None
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def inflate_dataset(inst: Stored, cap: int, whole: bool, keep: bool = True) -> io.BytesIO:
    """The dataset of a Deflated file inflated, at most ``cap`` bytes of it: a few MB
    stored can inflate to gigabytes, and nothing inflated it whole before. With
    ``whole``, Problem 422 if it inflates to more (``cap``: what its image attributes
    say, and room for the other elements); else the first ``cap`` bytes. Without
    ``keep`` nothing is kept (only the size is checked)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out, size, pending = bytearray(), 0, b""
    with open(inst.path, "rb") as fh:
        try:
            fh.seek(dataset_offset(fh.read(144)))
            while size <= cap and not inflater.eof:
                pending = pending or fh.read(1 << 20)
                if not pending:
                    break
                chunk = inflater.decompress(pending, 1 << 20)  # 1 MB at a time
                size += len(chunk)
                if keep:
                    out += chunk
                pending = inflater.unconsumed_tail
        except (ValueError, zlib.error) as err:
            raise Problem(
                422, "Unprocessable Content", f"the Deflated dataset cannot be read: {err}"
            ) from None
    if whole and size > cap:
        raise Problem(
            422,
            "Unprocessable Content",
            f"the Deflated dataset inflates to more than its image attributes allow "
            f"({cap // 2**20} MB)",
        )
    del out[cap:]
    return io.BytesIO(out)


def whole_number(ds: pydicom.Dataset, keyword: str, default: int = 1) -> int:
    """An integer attribute (``default`` if absent or empty); Problem 422 naming it if
    its value is not an integer (an IS the receive path kept as sent: ``abc``, ``2.5``)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise Problem(
            422, "Unprocessable Content", f"{keyword} {str(value)[:64]!r} is not a whole number"
        ) from None


def decoded_bytes(inst: Stored) -> int:
    """Bytes its pixels take once decoded (from the header; no pixel is read)."""
    ds = read_dataset(inst, stop_before_pixels=True)
    if "Rows" not in ds:
        return 0
    keywords = ("Rows", "Columns", "SamplesPerPixel", "NumberOfFrames")
    rows, cols, samples, frames = (whole_number(ds, k) for k in keywords)
    bits = int(ds.get("BitsAllocated") or 8)
    return rows * cols * max(samples, 1) * max(frames, 1) * max(bits, 8) // 8


def check_json_accept(accept: str | None) -> None:
    """Problem 406 unless the client accepts DICOM JSON."""
    if not any(media in JSON_MEDIA for media, _ in media_ranges(accept)):
        raise Problem(
            406, "Not Acceptable", "this resource is application/dicom+json (or application/json)"
        )


def media_ranges(accept: str | None) -> list[tuple[str, Message]]:
    ranges = []
    for item in (accept or "*/*").split(","):
        msg = Message()
        msg["Content-Type"] = item.strip() or "*/*"
        ranges.append((msg.get_content_type(), msg))
    return ranges


def accepted_syntaxes(accept: str | None) -> set[str] | None:
    """The transfer syntaxes a retrieve may use (None: any); Problem 406 if the client
    accepts no ``multipart/related; type="application/dicom"``."""
    syntaxes: set[str] = set()
    for media, msg in media_ranges(accept):
        if media in ("*/*", "multipart/*") or (
            media == "multipart/related" and (msg.get_param("type") or DICOM) == DICOM
        ):
            ts = msg.get_param("transfer-syntax")
            if ts == "*" or media != "multipart/related":
                return None
            syntaxes.add(str(ts or ExplicitVRLittleEndian))
    if not syntaxes:
        raise Problem(
            406,
            "Not Acceptable",
            f'this node retrieves instances as multipart/related; type="{DICOM}"',
        )
    return syntaxes


def new_boundary() -> str:
    return uuid.uuid4().hex


# -- metadata (bulk data: .bulk) -------------------------------------------------------------


def metadata(inst: Stored, instance_url: str) -> dict[str, Any]:
    """The instance's DICOM JSON, bulk data (Pixel Data, large binary values) by URI."""
    ds = read_dataset(inst, stop_before_pixels=True)
    dropped: list[str] = []
    # A value that cannot be put in JSON (an IS or DS that is not a number: the receive
    # path keeps values as sent; a NaN or infinite float) leaves out that element alone,
    # at any depth, instead of failing the whole answer (pydicom's suppress_invalid_tags
    # left out the whole top-level sequence holding one, and switched pydicom's reading
    # to strict for every thread meanwhile); one line is logged per instance.
    body = _json(ds, f"{instance_url}/bulk/", "", dropped)
    if dropped:
        log.warning(
            "WADO-RS metadata of instance %s of study %s: %d element(s) left out, their "
            "values cannot be put in JSON (first: %s)",
            inst.sop,
            inst.study,
            len(dropped),
            dropped[0],
        )
    if inst.rows:
        bits = int(ds.get("BitsAllocated", 16) or 16)
        encapsulated = UID(inst.transfer_syntax).is_compressed
        body["7FE00010"] = {
            "vr": "OB" if encapsulated or bits <= 8 else "OW",
            "BulkDataURI": f"{instance_url}/bulk/7FE00010",
        }
    return body


def _json(ds: pydicom.Dataset, bulk: str, path: str, dropped: list[str]) -> dict[str, Any]:
    """The DICOM JSON of ``ds`` (an item at ``path``: ``SEQ/ITEM/``…, items from 1).
    A binary value over 1 kB is a BulkDataURI naming its path (:mod:`.bulk`); an
    element whose value cannot be put in JSON is left out and noted in ``dropped``."""
    out: dict[str, Any] = {}
    for key in ds.keys():  # noqa: SIM118 - iterating a Dataset converts elements outside the try
        name = f"{key:08X}"
        try:
            elem = ds[key]
            if elem.VR == "SQ":
                out[name] = {
                    "vr": "SQ",
                    "Value": [
                        _json(item, bulk, f"{path}{name}/{k}/", dropped)
                        for k, item in enumerate(elem.value, 1)
                    ],
                }
            else:
                value = elem.to_json_dict(
                    bulk_data_element_handler=lambda _e, at=f"{bulk}{path}{name}": at,
                    bulk_data_threshold=1024,
                )
                numbers = value.get("Value", ())
                if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                    raise ValueError(f"{numbers[:4]!r}: JSON has no NaN or infinity")
                out[name] = value
        except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on bad values
            dropped.append(f"{path}{name}: {err}")
    return out


# -- rendered ---------------------------------------------------------------------------

RENDERED = {"image/jpeg": "JPEG", "image/png": "PNG"}


def rendered_type(accept: str | None) -> str:
    """``image/jpeg`` (the default) or ``image/png``; Problem 406 otherwise."""
    for media, _ in media_ranges(accept):
        if media in RENDERED:
            return media
        if media in ("*/*", "image/*"):
            return "image/jpeg"
    raise Problem(406, "Not Acceptable", "rendered images are image/jpeg or image/png")


def render(inst: Stored, media: str, limit: int, frame: int | None = None) -> bytes:
    """An 8-bit rendering of a single-frame image, or of ``frame`` (1-based) of a
    multi-frame one: modality LUT, then its window (or the full range), MONOCHROME1
    inverted; colour images as they are. Only that frame is decoded. Problem 400 if it
    would take more than ``limit`` bytes (8 per sample while it is windowed)."""
    if not inst.rows:
        raise Problem(400, "Bad Request", "the instance has no pixel data to render")
    frames = inst.frames or 1
    if frame is None and frames > 1:
        raise Problem(
            400,
            "Bad Request",
            f"the instance has {frames} frames: ask for one with .../frames/{{n}}/rendered",
        )
    if frame is not None and frame > frames:
        raise Problem(
            404,
            "Not Found",
            f"frame {frame} does not exist: instance {inst.sop} has {frames} "
            f"frame{'s' if frames != 1 else ''}",
            frame=str(frame),
        )
    check_files([inst])
    samples = decoded_bytes(inst) // frames
    if samples * 8 > limit:
        raise Problem(
            400,
            "Bad Request",
            f"the image is too large to render: {samples * 8 // 2**20} MB while windowed, "
            f"more than http.max_decoded_mb ({limit // 2**20} MB)",
        )
    deflated = inst.transfer_syntax == DeflatedExplicitVRLittleEndian
    if deflated and samples * frames > limit:  # inflated whole to read one frame
        raise Problem(
            400,
            "Bad Request",
            f"the image is stored Deflated and takes {samples * frames // 2**20} MB inflated, "
            f"more than http.max_decoded_mb ({limit // 2**20} MB)",
        )
    from dicom_node.http import codestream  # (imports this module)

    codestream.check_instance(inst, frame or 1)  # no decoder allocates past the header
    # A Deflated dataset is read whole (pydicom cannot seek in it): capped to its size.
    ds = read_dataset(inst, not deflated, samples * frames + INFLATE_MAX)
    DECODING.admit()
    source = ds if deflated else inst.path
    index = frame - 1 if frames > 1 and frame else None
    try:  # the decode and the windowing share the limit with every other in flight
        with DECODING.hold(samples * 8, limit):
            return _rendered(source, index, ds, media)
    except TimeoutError as err:
        raise Problem(503, "Service Unavailable", f"busy decoding others: {err}") from None


def _rendered(source: Any, index: int | None, ds: pydicom.Dataset, media: str) -> bytes:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    try:
        pixels = pixel_array(source, index=index)
    except Exception as err:  # noqa: BLE001 - decoders raise many kinds on bad data
        raise Problem(
            422, "Unprocessable Content", f"its pixel data cannot be decoded: {err}"
        ) from None
    if ds.get("SamplesPerPixel", 1) == 1:
        values = apply_modality_lut(pixels, ds).astype(np.float64)
        del pixels
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds).astype(np.float64)
        low, high = float(values.min()), float(values.max())
        values -= low
        values /= high - low or 1.0  # in place, as (v - low) / range * 255
        values *= 255.0
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":
            np.subtract(255.0, values, out=values)
        image = Image.fromarray(values.round().astype(np.uint8), mode="L")
    else:
        image = Image.fromarray(pixels.astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format=RENDERED[media])
    return out.getvalue()


def instance_url(base: str, inst: Stored) -> str:
    return base + uid_path(inst.study, inst.series, inst.sop)
