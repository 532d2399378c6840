"""Where the Pixel Data of a stored file lies (``wado.pixel_data_at``), the one place
WADO-RS frames (``frames.layout``) and metadata (``metadata_json``: the elements after
it) find it: in every file layout, from the element headers, never from where pydicom's
reading stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from dicom_node.http import bulk, frames, metadata_json
from dicom_node.http.problem import Problem
from dicom_node.http.wado import Stored, pixel_data_at

UNDEFINED = 0xFFFFFFFF
FLOAT, DOUBLE, PIXEL_DATA = 0x7FE00008, 0x7FE00009, 0x7FE00010
TS = {
    "implicit": ImplicitVRLittleEndian,
    "explicit": ExplicitVRLittleEndian,
    "big endian": ExplicitVRBigEndian,
    "encapsulated": RLELossless,
    "undefined-length sequence": ImplicitVRLittleEndian,
    "float": ExplicitVRLittleEndian,
    "double float": ExplicitVRLittleEndian,
    "no pixel data": ExplicitVRLittleEndian,
}


def _image(layout: str, tail: bool = True) -> Dataset:
    """A 4 x 4 image in ``layout`` (:data:`TS`), with a private group after its pixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = TS[layout]
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName = "Pixel^Place"
    if layout == "undefined-length sequence":  # its items' ends are found only by walking
        item = Dataset()
        item.CodeValue, item.CodeMeaning = "T-D0050", "Tissue"
        item.is_undefined_length_sequence_item = True
        ds.AnatomicRegionSequence = Sequence([item])
        ds["AnatomicRegionSequence"].is_undefined_length = True
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if layout == "encapsulated":
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = encapsulate([bytes(range(16))])
        ds["PixelData"].VR = "OB"
    elif layout == "float":
        ds.BitsAllocated = 32
        del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
        ds.FloatPixelData = bytes(range(64))
    elif layout == "double float":
        ds.BitsAllocated = 64
        del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
        ds.DoubleFloatPixelData = bytes(range(128))
    elif layout != "no pixel data":
        ds.PixelData = bytes(range(32))
    if tail:
        ds.private_block(0x7FE1, "ACME 1.0", create=True).add_new(0x01, "LO", "after")
    return ds


def _stored(ds: Dataset, path: Path) -> Stored:
    ds.save_as(path, enforce_file_format=True)
    ts = str(ds.file_meta.TransferSyntaxUID)
    return Stored(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, str(path), ts, 4, 1)


def _after(path: str, tag: str) -> dict[str, Any]:
    """pydicom's DICOM JSON of the elements after ``tag`` in the file, read whole (in
    implicit VR its private elements are UN: their creator is not in its dictionary)."""
    body = pydicom.dcmread(path).to_json_dict(bulk_data_threshold=1024)
    after = {k: v for k, v in body.items() if k > tag}
    assert "7FE11001" in after
    return after


@pytest.mark.parametrize("layout", list(TS))
def test_the_pixel_data_is_found_in_every_layout(layout: str, tmp_path: Path) -> None:
    """Its tag, and the file offset and length of its value: the stored value's bytes
    (encapsulated: its items, then the sequence delimiter), whatever comes before
    (an undefined-length sequence) or after it (a private group)."""
    ds = _image(layout)
    inst = _stored(ds, tmp_path / "f.dcm")
    raw = Path(inst.path).read_bytes()
    found = pixel_data_at(inst)
    assert found is not None
    if layout == "no pixel data":
        assert found.offset == -1
        return
    tag = {"float": FLOAT, "double float": DOUBLE}.get(layout, PIXEL_DATA)
    value = ds[tag].value
    assert found.tag == tag
    assert raw[found.offset : found.offset + len(value)] == value
    if layout == "encapsulated":
        assert found.length == UNDEFINED
        assert raw[found.offset + len(value) :][:8] == b"\xfe\xff\xdd\xe0\0\0\0\0"
    else:
        assert found.length == len(value)


def test_a_deflated_file_is_not_walked(tmp_path: Path) -> None:
    """Its positions lie in the inflated stream: none is given."""
    ds = _image("explicit")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    assert pixel_data_at(_stored(ds, tmp_path / "f.dcm")) is None


@pytest.mark.parametrize("layout", ["implicit", "explicit", "big endian", "encapsulated"])
def test_frames_find_the_pixel_data_there(layout: str, tmp_path: Path) -> None:
    """``frames.layout`` gives the same offset and length (Explicit VR Big Endian: it
    read the tag and length as little endian, and answered 404 "no Pixel Data")."""
    ds = _image(layout)
    inst = _stored(ds, tmp_path / "f.dcm")
    raw = Path(inst.path).read_bytes()
    pixels = frames.layout(inst)
    assert raw[pixels.value_offset :][: len(ds.PixelData)] == ds.PixelData
    assert pixels.value_length == (UNDEFINED if layout == "encapsulated" else len(ds.PixelData))


@pytest.mark.parametrize(("layout", "bits"), [("float", 32), ("double float", 64)])
def test_frames_find_float_pixel_data(layout: str, bits: int, tmp_path: Path) -> None:
    """Float and Double Float Pixel Data are frames too (they answered 404 "no Pixel
    Data"): 4 x 4 samples of 4 or 8 bytes."""
    ds = _image(layout)
    inst = _stored(ds, tmp_path / "f.dcm")
    value = ds[FLOAT if bits == 32 else DOUBLE].value
    pixels = frames.layout(inst)
    assert Path(inst.path).read_bytes()[pixels.value_offset :][: len(value)] == value
    assert (pixels.value_length, pixels.frames, pixels.frame_bits) == (len(value), 1, 16 * bits)


def test_frames_of_float_pixel_data_in_an_encapsulated_syntax(tmp_path: Path) -> None:
    """Never encapsulated: its native bytes are not sent as a compressed frame."""
    ds = _image("float")
    ds.file_meta.TransferSyntaxUID = RLELossless
    with pytest.raises(Problem) as err:
        frames.layout(_stored(ds, tmp_path / "f.dcm"))
    assert err.value.status == 422 and "never encapsulated" in err.value.detail


def test_frames_of_an_image_without_pixel_data(tmp_path: Path) -> None:
    inst = _stored(_image("no pixel data"), tmp_path / "f.dcm")
    with pytest.raises(Problem) as err:
        frames.layout(inst)
    assert err.value.status == 404


@pytest.mark.parametrize("layout", [k for k in TS if k != "no pixel data"])
def test_metadata_names_the_pixel_element_and_what_follows_it(layout: str, tmp_path: Path) -> None:
    """The pixel element is a BulkDataURI under its own tag and VR, which gives its
    value (Float Pixel Data was named Pixel Data, OW: a URI to no element; what followed
    it was left out), and the private group after it is there."""
    inst = _stored(_image(layout), tmp_path / "f.dcm")
    body = metadata_json.metadata(inst, "http://node/i")
    tag, vr = {"float": ("7FE00008", "OF"), "double float": ("7FE00009", "OD")}.get(
        layout, ("7FE00010", "OB" if layout == "encapsulated" else "OW")
    )
    pixel_tags = [k for k in body if k.startswith("7FE000")]
    assert pixel_tags == [tag]
    assert body[tag] == {"vr": vr, "BulkDataURI": f"http://node/i/bulk/{tag}"}
    assert {k: v for k, v in body.items() if k > tag} == _after(inst.path, tag)
    value = bulk.locate(inst, tag, 2**20)  # what its BulkDataURI gives
    with open(inst.path, "rb") as fh:
        fh.seek(value.offset)
        assert fh.read(8) == pydicom.dcmread(inst.path)[int(tag, 16)].value[:8]


def test_metadata_of_a_file_without_elements_after_its_pixels(tmp_path: Path) -> None:
    inst = _stored(_image("explicit", tail=False), tmp_path / "f.dcm")
    body = metadata_json.metadata(inst, "http://node/i")
    assert max(body) == "7FE00010"


def test_metadata_of_an_image_without_pixel_data_names_none(tmp_path: Path) -> None:
    """Rows but no Pixel Data element: no BulkDataURI to an element the file lacks (it
    was given one, whose bulk read answers 404)."""
    inst = _stored(_image("no pixel data"), tmp_path / "f.dcm")
    body = metadata_json.metadata(inst, "http://node/i")
    assert not [k for k in body if k.startswith("7FE000")]
    assert {k: v for k, v in body.items() if k > "7FE00010"} == _after(inst.path, "7FE00010")
