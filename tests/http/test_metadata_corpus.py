"""WADO-RS metadata's DICOM JSON (``metadata_json.dataset_json``) on pydicom's own
test files: for every file pydicom can convert, the same JSON as pydicom's
``to_json_dict`` (bulk data over 1 kB as a BulkDataURI naming the element's path; an
empty sequence without ``"Value": []``, PS3.18 F.2.5); for
the others, the elements pydicom cannot convert left out one by one, never an exception."""

from __future__ import annotations

from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_files

from dicom_node.http.metadata_json import dataset_json

FILES = sorted(get_testdata_files("*.dcm"))
URL = "http://node/bulk/"


def _paths(body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The BulkDataURIs of ``body`` by element path, nested included."""
    out: dict[str, Any] = {}
    for name, elem in body.items():
        if "BulkDataURI" in elem:
            out[prefix + name] = elem["BulkDataURI"]
        for k, item in enumerate(elem.get("Value", ()) if elem.get("vr") == "SQ" else (), 1):
            out.update(_paths(item, f"{prefix}{name}/{k}/"))
    return out


def _without_uris(body: dict[str, Any], f25: bool = False) -> dict[str, Any]:
    """``body`` without its BulkDataURIs; with ``f25`` (pydicom's JSON) an empty
    sequence as PS3.18 F.2.5 has it, its VR alone (pydicom writes ``"Value": []``)."""
    out = {}
    for name, elem in body.items():
        elem = {k: v for k, v in elem.items() if k != "BulkDataURI"}
        if elem.get("vr") == "SQ" and "Value" in elem:
            elem["Value"] = [_without_uris(item, f25) for item in elem["Value"]]
            if f25 and not elem["Value"]:
                del elem["Value"]
        out[name] = elem
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_metadata_json_is_pydicoms_where_pydicom_can(path: str) -> None:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as err:  # noqa: BLE001 - a few test files are broken on purpose
        pytest.skip(f"pydicom cannot read it: {err}")
    dropped: list[str] = []
    ours = dataset_json(ds, URL, "", dropped)
    try:
        theirs = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda e: "x")
    except Exception:  # noqa: BLE001 - pydicom fails on a bad value: ours leaves it out
        assert dropped, "pydicom failed on a value that ours converted"
        return
    if dropped:  # pydicom converted what ours left out: only non-finite floats
        assert all("NaN or infinity" in d for d in dropped), dropped
        return
    assert _without_uris(ours) == _without_uris(theirs, f25=True)
    for where, uri in _paths(ours).items():  # each names its own element's path
        assert uri == URL + where
