"""WADO-RS (PS3.18 section 10.4): the stored instances a request names, found through
the index, checked and read.

Instances are streamed from their files: a study of any size goes out as
``multipart/related; type="application/dicom"`` a megabyte at a time, in the transfer
syntax :mod:`.transcode` picks (as stored, or converted one instance at a time); what
the client accepts: :mod:`.wado_accept`. Metadata: :mod:`.metadata_json`; bulk data:
:mod:`.bulk`; frames: :mod:`.frames`; renderings: :mod:`.render`; thumbnails:
:mod:`.thumbnail`.
"""

from __future__ import annotations

import io
import logging
import os
import zlib
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from sqlalchemy import select

from dicom_node.http.links import uid_path
from dicom_node.http.problem import Problem
from dicom_node.http.results import catalogue
from dicom_node.index.header import INFLATE_MAX
from dicom_node.store.check import Located, StructureError, TooManyElements, locate_pixels
from dicom_node.store.inflate import inflated_pieces

log = logging.getLogger(__name__)

CHUNK = 1 << 20


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
            # By Instance Number, those without one last on every database (SQLite
            # sorts NULL first, PostgreSQL last).
            stmt.order_by(
                src.c.series_uid,
                src.c.instance_number.is_(None),
                src.c.instance_number,
                src.c.sop_instance_uid,
            )
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
    with suppress(StructureError, OSError):  # read as before: pydicom answers what it can
        pixel_data_at(inst)


def pixel_data_at(inst: Stored) -> Located | None:
    """Where the value of the instance's top-level Pixel Data lies (or of its Float or
    Double Float Pixel Data, where pydicom's ``stop_before_pixels`` stops too): its
    tag, explicit VR, file offset and length (undefined if encapsulated), found by the
    receive path's walk of the element headers, which stops there (not where pydicom's
    reading stopped: undocumented). ``offset`` -1 if it has none; None if not walked
    (Deflated: its positions lie in the inflated stream). Problem 422 past
    http.max_header_elements elements before it (:func:`check_header`); StructureError
    if the dataset cannot be walked up to it."""
    most = MAX_ELEMENTS[0]
    try:
        return locate_pixels(inst.path, inst.transfer_syntax, most)
    except TooManyElements:
        raise Problem(
            422,
            "Unprocessable Content",
            f"instance {inst.sop} holds more than http.max_header_elements ({most}) "
            "elements: this node does not read its header",
        ) from None


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
    out, size = bytearray(), 0
    with open(inst.path, "rb") as fh:
        try:
            for chunk in inflated_pieces(fh):
                size += len(chunk)
                if keep:
                    out += chunk
                if size > cap:
                    break
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


def instance_url(base: str, inst: Stored) -> str:
    """The URL of the instance under the WADO-RS root ``base``."""
    return base + uid_path(inst.study, inst.series, inst.sop)
