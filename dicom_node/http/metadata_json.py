"""The DICOM JSON of a stored instance for WADO-RS metadata (PS3.18 F.2): its header as
pydicom converts it (but an empty sequence is its VR alone, not ``"Value": []``: F.2.5),
bulk data (Pixel Data, binary values over 1 kB, nested ones too) as a BulkDataURI naming
the element's path, served by :mod:`.bulk`.
"""

from __future__ import annotations

import logging
import math
from io import BytesIO
from typing import Any, BinaryIO

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.filereader import read_dataset as read_dataset_at
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicom_node.http.fragments import UNDEFINED, pixel_data_end
from dicom_node.http.wado import Stored, check_files, pixel_data_at, read_dataset
from dicom_node.store.check import Located, StructureError

log = logging.getLogger(__name__)


def metadata(inst: Stored, instance_url: str) -> dict[str, Any]:
    """The instance's DICOM JSON, bulk data (Pixel Data, large binary values) by URI."""
    ds, pixels, tail = read_instance(inst)
    dropped: list[str] = []
    # A value that cannot be put in JSON (an IS or DS that is not a number: the receive
    # path keeps values as sent; a NaN or infinite float) leaves out that element alone,
    # at any depth, instead of failing the whole answer (pydicom's suppress_invalid_tags
    # left out the whole top-level sequence holding one, and switched pydicom's reading
    # to strict for every thread meanwhile); one line is logged per instance.
    body = dataset_json(ds, f"{instance_url}/bulk/", "", dropped)
    if dropped:
        log.warning(
            "WADO-RS metadata of instance %s of study %s: %d element(s) left out, their "
            "values cannot be put in JSON (first: %s)",
            inst.sop,
            inst.study,
            len(dropped),
            dropped[0],
        )
    if pixels is not None:
        name = f"{pixels:08X}"
        vr = _FLOAT_VRS.get(pixels)
        if vr is None:
            bits = int(ds.get("BitsAllocated", 16) or 16)
            vr = "OB" if UID(inst.transfer_syntax).is_compressed or bits <= 8 else "OW"
        body[name] = {"vr": vr, "BulkDataURI": f"{instance_url}/bulk/{name}"}
    if tail is not None:  # after Pixel Data: its own elements, and bulk data by URI
        body.update(dataset_json(tail, f"{instance_url}/bulk/", "", dropped))
    return body


MAX_TAIL = 256 * 1024  # bytes after Pixel Data read as elements (a vendor's, signatures)
PIXEL_DATA = 0x7FE00010
_FLOAT_VRS = {0x7FE00008: "OF", 0x7FE00009: "OD"}  # Float, Double Float Pixel Data


def read_instance(inst: Stored) -> tuple[pydicom.Dataset, int | None, pydicom.Dataset | None]:
    """The instance's header (up to its Pixel Data), its pixel element's tag (None if it
    has none) and the elements after it (:func:`after_pixels`), its file read once. One
    not walked (Deflated: not seekable; malformed) is read as its header and Rows say."""
    if inst.transfer_syntax == DeflatedExplicitVRLittleEndian:
        return read_dataset(inst, stop_before_pixels=True), PIXEL_DATA if inst.rows else None, None
    problem: Exception | None = None
    try:
        found = pixel_data_at(inst)  # Problem 422 past http.max_header_elements
    except FileNotFoundError:
        check_files([inst])  # Problem 404
        raise
    except (StructureError, OSError) as err:  # read as before, but nothing after pixels
        found, problem = None, err
    with open(inst.path, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
        if found is None or found.offset < 0:  # not walked: Pixel Data if it has Rows
            if problem is not None and inst.rows:
                _left_out(inst, problem)
            return ds, PIXEL_DATA if found is None and inst.rows else None, None
        return ds, found.tag, after_pixels(inst, fh, found, ds)


def after_pixels(
    inst: Stored, fh: BinaryIO, pixels: Located, header: pydicom.Dataset
) -> pydicom.Dataset | None:
    """The elements after the instance's Pixel Data (``pixels``: where its value lies) in
    its file ``fh`` (a vendor's private group 7FE1, Digital Signatures, padding): the
    Pixel Data is skipped by its length, item by item if encapsulated. None if there are
    none, or if they take more than :data:`MAX_TAIL` bytes or cannot be read (one line
    logged)."""
    ts = UID(inst.transfer_syntax)
    try:
        if pixels.length == UNDEFINED:
            fh.seek(pixel_data_end(fh, pixels.offset))
        else:
            fh.seek(pixels.offset + pixels.length)
        rest = fh.read(MAX_TAIL + 1)
        if not rest:
            return None
        if len(rest) > MAX_TAIL:
            raise ValueError(f"more than {MAX_TAIL} bytes follow the Pixel Data")
        # Text there is in the file's character set, which the header names.
        charset = header.get("SpecificCharacterSet")
        encoding = convert_encodings(charset) if charset else default_encoding
        return read_dataset_at(
            BytesIO(rest), ts.is_implicit_VR, ts.is_little_endian, parent_encoding=encoding
        )
    except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on garbage
        _left_out(inst, err)
        return None


def _left_out(inst: Stored, err: Exception) -> None:
    log.warning(
        "WADO-RS metadata of instance %s of study %s: the elements after its Pixel "
        "Data are left out: %s",
        inst.sop,
        inst.study,
        err,
    )


def dataset_json(ds: pydicom.Dataset, bulk: str, path: str, dropped: list[str]) -> dict[str, Any]:
    """The DICOM JSON of ``ds`` (an item at ``path``: ``SEQ/ITEM/``…, items from 1).
    A binary value over 1 kB is a BulkDataURI naming its path (:mod:`.bulk`); an
    element whose value cannot be put in JSON is left out and noted in ``dropped``."""
    out: dict[str, Any] = {}
    for key in ds.keys():  # noqa: SIM118 - iterating a Dataset converts elements outside the try
        name = f"{key:08X}"
        try:
            elem = ds[key]
            if elem.VR == "SQ":
                items = [
                    dataset_json(item, bulk, f"{path}{name}/{k}/", dropped)
                    for k, item in enumerate(elem.value, 1)
                ]
                # PS3.18 F.2.5: empty (no items) is the VR alone, no "Value": []
                out[name] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
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
