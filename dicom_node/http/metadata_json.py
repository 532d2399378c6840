"""The DICOM JSON of a stored instance for WADO-RS metadata (PS3.18 F.2): its header as
pydicom converts it (but an empty sequence is its VR alone, not ``"Value": []``: F.2.5),
bulk data (Pixel Data, binary values over 1 kB, nested ones too) as a BulkDataURI naming
the element's path, served by :mod:`.bulk`.
"""

from __future__ import annotations

import logging
import math
from io import BytesIO
from typing import Any, Literal

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.filereader import read_dataset as read_dataset_at
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicom_node.http.wado import Stored, read_dataset

log = logging.getLogger(__name__)


def metadata(inst: Stored, instance_url: str) -> dict[str, Any]:
    """The instance's DICOM JSON, bulk data (Pixel Data, large binary values) by URI."""
    ds = read_dataset(inst, stop_before_pixels=True)
    tail = after_pixels(inst) if inst.rows else None
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
    if inst.rows:
        bits = int(ds.get("BitsAllocated", 16) or 16)
        encapsulated = UID(inst.transfer_syntax).is_compressed
        body["7FE00010"] = {
            "vr": "OB" if encapsulated or bits <= 8 else "OW",
            "BulkDataURI": f"{instance_url}/bulk/7FE00010",
        }
    if tail is not None:  # after Pixel Data: its own elements, and bulk data by URI
        body.update(dataset_json(tail, f"{instance_url}/bulk/", "", dropped))
    return body


MAX_TAIL = 256 * 1024  # bytes after Pixel Data read as elements (a vendor's, signatures)
_PIXEL_DATA = {True: b"\xe0\x7f\x10\x00", False: b"\x7f\xe0\x00\x10"}  # by little endian
_SEQUENCE_END = b"\xfe\xff\xdd\xe0"  # (FFFE,E0DD): encapsulated is little endian


def after_pixels(inst: Stored) -> pydicom.Dataset | None:
    """The elements after the Pixel Data of the instance's file (a vendor's private
    group 7FE1, Digital Signatures, padding): the Pixel Data is skipped by its length,
    item by item if encapsulated. None if there are none, if the file is Deflated (not
    seekable), or if they take more than :data:`MAX_TAIL` bytes or cannot be read (one
    line logged)."""
    ts = UID(inst.transfer_syntax)
    if ts == DeflatedExplicitVRLittleEndian:
        return None
    little, implicit = ts.is_little_endian, ts.is_implicit_VR
    order: Literal["little", "big"] = "little" if little else "big"
    try:
        with open(inst.path, "rb") as fh:
            header = pydicom.dcmread(fh, stop_before_pixels=True)  # stops at its tag
            head = fh.read(8 if implicit else 12)
            if head[:4] != _PIXEL_DATA[little]:
                return None
            length = int.from_bytes(head[-4:], order)
            if length != 0xFFFFFFFF:
                fh.seek(length, 1)
            else:
                while (item := fh.read(8))[:4] != _SEQUENCE_END:
                    if len(item) < 8:
                        raise EOFError("the file ends inside the Pixel Data")
                    fh.seek(int.from_bytes(item[4:], "little"), 1)
            rest = fh.read(MAX_TAIL + 1)
            if not rest:
                return None
            if len(rest) > MAX_TAIL:
                raise ValueError(f"more than {MAX_TAIL} bytes follow the Pixel Data")
            # Text there is in the file's character set, which the header names.
            charset = header.get("SpecificCharacterSet")
            encoding = convert_encodings(charset) if charset else default_encoding
            return read_dataset_at(BytesIO(rest), implicit, little, parent_encoding=encoding)
    except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on garbage
        log.warning(
            "WADO-RS metadata of instance %s of study %s: the elements after its Pixel "
            "Data are left out: %s",
            inst.sop,
            inst.study,
            err,
        )
        return None


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
