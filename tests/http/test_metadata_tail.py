"""WADO-RS metadata of the elements after the Pixel Data (``metadata_json.after_pixels``),
read from files written here: their text is decoded in the file's character set."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicom_node.http import metadata_json
from dicom_node.http.wado import Stored


def _file(path: Path, charset: str) -> Stored:
    """A 2 x 2 image whose Pixel Data is followed by a private LO holding 'Grüße'."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = charset
    ds.PatientName = "Müller^Jörg"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = b"\0\1\2\3"
    ds.private_block(0x7FE1, "ACME 1.0", create=True).add_new(0x01, "LO", "Grüße")
    ds.save_as(path, enforce_file_format=True)
    return Stored(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        str(path),
        ExplicitVRLittleEndian,
        2,
        1,
    )


def test_text_after_the_pixel_data_is_in_the_files_character_set(tmp_path: Path) -> None:
    """A UTF-8 (ISO_IR 192) or Latin-1 (ISO_IR 100) file's private text after the Pixel
    Data reads as the header's does (it was decoded as the default character set:
    'GrÃ¼Ã\\x9fe' in a UTF-8 file)."""
    for charset in ("ISO_IR 192", "ISO_IR 100"):
        inst = _file(tmp_path / f"{charset}.dcm", charset)
        body = metadata_json.metadata(inst, "http://node/instance")
        assert body["00100010"]["Value"] == [{"Alphabetic": "Müller^Jörg"}]
        assert body["7FE11001"] == {"vr": "LO", "Value": ["Grüße"]}, charset
