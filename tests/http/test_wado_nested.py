"""WADO-RS metadata and bulk data of elements inside sequences, against a running node:
a binary value inside a sequence (an Icon Image Sequence's own Pixel Data, a private OB
two sequences deep) gets a BulkDataURI naming its path, which dicomweb-client's
``retrieve_bulkdata`` reads back byte for byte as pydicom's value (a Range too), in
explicit, implicit, Deflated and RLE-encapsulated files; and one bad value inside a
sequence leaves out that element only, not the sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from tests.http.support import renamed
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

ICON = 0x00880200  # Icon Image Sequence
PRIVATE_SQ, PRIVATE_OB = 0x00091012, 0x00091011


def _icon(encapsulated: bool) -> Dataset:
    """A 64 x 64 8-bit icon with its own Pixel Data (4 kB: bulk data in metadata)."""
    icon = Dataset()
    icon.Rows = icon.Columns = 64
    icon.SamplesPerPixel, icon.PhotometricInterpretation = 1, "MONOCHROME2"
    icon.BitsAllocated = icon.BitsStored = 8
    icon.HighBit, icon.PixelRepresentation = 7, 0
    pixels = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    if encapsulated:
        opts = {
            "rows": 64,
            "columns": 64,
            "samples_per_pixel": 1,
            "bits_allocated": 8,
            "bits_stored": 8,
            "pixel_representation": 0,
            "photometric_interpretation": "MONOCHROME2",
            "number_of_frames": 1,
        }
        icon.PixelData = encapsulate([get_encoder(RLELossless).encode(pixels, **opts)])
        icon["PixelData"].VR = "OB"
    else:
        icon.PixelData = pixels.tobytes()
    return icon


def _with_nested(source: str, ts: str, path: Path) -> Dataset:
    """pydicom's test file under new UIDs in ``ts``, with an icon and a private OB in an
    item of an item of a private sequence; written to ``path`` and read back."""
    found = get_testdata_file(source)
    if found is None:
        pytest.skip(f"pydicom test file {source} is not installed")
    ds = renamed(pydicom.dcmread(found), "NESTED")
    ds.file_meta.TransferSyntaxUID = ts
    ds.IconImageSequence = Sequence([_icon(ts == RLELossless)])
    inner = Dataset()
    inner.add_new(0x00090010, "LO", "NESTED")
    inner.add_new(PRIVATE_OB, "OB", bytes(range(256)) * 6)
    outer = Dataset()
    outer.add_new(0x00090010, "LO", "NESTED")
    outer.add_new(0x00091013, "LO", "first item")
    second = Dataset()
    second.add_new(0x00090010, "LO", "NESTED")
    second.add_new(PRIVATE_SQ, "SQ", Sequence([inner]))
    ds.add_new(0x00090010, "LO", "NESTED")
    ds.add_new(PRIVATE_SQ, "SQ", Sequence([outer, second]))
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)


def _instance_url(node: NodeProcess, ds: Dataset) -> str:
    return (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )


@pytest.mark.parametrize(
    ("source", "ts"),
    [
        ("CT_small.dcm", ExplicitVRLittleEndian),
        ("MR_small.dcm", ImplicitVRLittleEndian),
        ("CT_small.dcm", DeflatedExplicitVRLittleEndian),
        ("SC_rgb_rle_2frame.dcm", RLELossless),
    ],
    ids=["explicit", "implicit", "deflated", "rle"],
)
def test_bulk_data_inside_sequences(
    node: NodeProcess, tmp_path: Path, source: str, ts: str
) -> None:
    ds = _with_nested(source, ts, tmp_path / "nested.dcm")
    assert store_file_raw(node.port, tmp_path / "nested.dcm") == 0
    client = DICOMwebClient(node.http_url + "/dicomweb")
    meta = client.retrieve_instance_metadata(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    icon_uri = meta["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"]
    assert icon_uri == _instance_url(node, ds) + "/bulk/00880200/1/7FE00010"
    icon_value = ds.IconImageSequence[0].PixelData
    assert client.retrieve_bulkdata(icon_uri) == [icon_value]
    assert client.retrieve_bulkdata(icon_uri, byte_range=(10, 99)) == [icon_value[10:100]]
    if ts == ImplicitVRLittleEndian:
        return  # private sequences without their VR are UN to pydicom: not walked as such
    deep = meta["00091012"]["Value"][1]["00091012"]["Value"][0]["00091011"]["BulkDataURI"]
    assert deep.endswith("/bulk/00091012/2/00091012/1/00091011")
    deep_value = ds[PRIVATE_SQ].value[1][PRIVATE_SQ].value[0][PRIVATE_OB].value
    assert client.retrieve_bulkdata(deep) == [deep_value]
    # The rest of the metadata is as before: the first item's value, the top level.
    assert meta["00091012"]["Value"][0]["00091013"]["Value"] == ["first item"]
    assert meta["7FE00010"]["BulkDataURI"].endswith("/bulk/7FE00010")


def test_paths_that_name_no_bulk_data_are_404(node: NodeProcess, tmp_path: Path) -> None:
    ds = _with_nested("CT_small.dcm", ExplicitVRLittleEndian, tmp_path / "nested.dcm")
    assert store_file_raw(node.port, tmp_path / "nested.dcm") == 0
    base = _instance_url(node, ds) + "/bulk/"
    for path in (
        "00880200/2/7FE00010",  # no second item
        "00880200/0/7FE00010",  # items count from 1
        "00880200/1",  # no element named
        "00880200/1/00280010",  # not binary
        "00880200/1/7FE00011",  # not there
        "00100010/1/00100010",  # not a sequence
        "00091012/1/00091011",  # the first item has none
        "00091012/2/00091012",  # a sequence
        "00880200/x/7FE00010",
        "00880200//7FE00010",
    ):
        r = requests.get(base + path, timeout=30)
        assert r.status_code == 404, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"] == "application/problem+json", path


def test_a_bad_value_in_a_sequence_leaves_out_that_element_only(
    node: NodeProcess, tmp_path: Path
) -> None:
    """A Referenced Frame Number (IS) of ``1X`` (written by hand: pydicom refuses such
    a value) and an FD holding NaN in an item of the Referenced Image Sequence: the
    metadata keeps the sequence and the item's other elements, leaves out those two
    (before: the whole sequence, and a 500 for the NaN), and the node logs one line
    naming the instance and the first of them."""
    source = get_testdata_file("CT_small.dcm")
    ds = renamed(pydicom.dcmread(source), "NESTED")
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.ReferencedFrameNumber = "12"
    item.DiffusionGradientOrientation = [float("nan"), 0.0, 1.0]  # FD: no JSON number
    ds.ReferencedImageSequence = Sequence([item])
    path = tmp_path / "badis.dcm"
    ds.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    good = b"\x08\x00\x60\x11IS\x02\x0012"
    assert raw.count(good) == 1
    path.write_bytes(raw.replace(good, b"\x08\x00\x60\x11IS\x02\x001X"))
    assert store_file_raw(node.port, path) == 0
    logged = len(node.log())
    r = requests.get(_instance_url(node, ds) + "/metadata", timeout=30)
    assert r.status_code == 200, r.text[:300]
    meta = r.json()[0]
    items = meta["00081140"]["Value"]
    assert items[0]["00081155"]["Value"] == ["1.2.3.4"]
    assert "00081150" in items[0] and "00081160" not in items[0]
    assert "00189089" not in items[0]
    assert meta["00100020"]["Value"] == ["NESTED"]
    lines = [line for line in node.log()[logged:].splitlines() if ds.SOPInstanceUID in line]
    assert len(lines) == 1 and "2 element(s)" in lines[0], lines
    assert "00081140/1/00081160" in lines[0]


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_an_empty_sequence_has_no_value(node: NodeProcess, tmp_path: Path, ts: str) -> None:
    """PS3.18 F.2.5: an attribute present but empty (a sequence of no items) is its
    ``vr`` alone, with no ``Value`` (pydicom's ``to_json_dict``, and the node before,
    wrote ``"Value": []``), at the top level and inside an item; an empty item stays an
    empty object. dicomweb-client's metadata, read by pydicom, gives the empty sequences
    back."""
    source = get_testdata_file("CT_small.dcm")
    ds = renamed(pydicom.dcmread(source), "NESTED")
    ds.file_meta.TransferSyntaxUID = ts
    ds.ProcedureCodeSequence = Sequence()
    item = Dataset()
    item.RequestedProcedureID = "RP1"
    item.ScheduledProtocolCodeSequence = Sequence()
    ds.RequestAttributesSequence = Sequence([item])
    ds.ReferencedStudySequence = Sequence([Dataset()])  # one empty item
    path = tmp_path / "empty_sq.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert store_file_raw(node.port, path) == 0
    r = requests.get(_instance_url(node, ds) + "/metadata", timeout=30)
    assert r.status_code == 200, r.text[:300]
    meta = r.json()[0]
    assert meta["00081032"] == {"vr": "SQ"}
    [requested] = meta["00400275"]["Value"]
    assert requested["00400008"] == {"vr": "SQ"}
    assert requested["00401001"]["Value"] == ["RP1"]
    assert meta["00081110"] == {"vr": "SQ", "Value": [{}]}
    client = DICOMwebClient(node.http_url + "/dicomweb")
    body = client.retrieve_instance_metadata(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )
    back = Dataset.from_json(body, bulk_data_uri_handler=lambda _uri: b"")
    assert len(back.ProcedureCodeSequence) == 0
    assert len(back.RequestAttributesSequence[0].ScheduledProtocolCodeSequence) == 0
    assert len(back.ReferencedStudySequence) == 1 and len(back.ReferencedStudySequence[0]) == 0
