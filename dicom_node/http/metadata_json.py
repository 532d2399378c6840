"""The DICOM JSON of a stored instance for WADO-RS metadata (PS3.18 F.2): its header as
pydicom converts it, bulk data (Pixel Data, binary values over 1 kB, nested ones too)
as a BulkDataURI naming the element's path, served by :mod:`.bulk`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pydicom
from pydicom.uid import UID

from dicom_node.http.wado import Stored, read_dataset

log = logging.getLogger(__name__)


def metadata(inst: Stored, instance_url: str) -> dict[str, Any]:
    """The instance's DICOM JSON, bulk data (Pixel Data, large binary values) by URI."""
    ds = read_dataset(inst, stop_before_pixels=True)
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
    return body


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
                out[name] = {
                    "vr": "SQ",
                    "Value": [
                        dataset_json(item, bulk, f"{path}{name}/{k}/", dropped)
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
