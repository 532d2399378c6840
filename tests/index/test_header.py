"""The index header parser against pydicom's own reading of the same files: every transfer
syntax family and character set the parser's direct value conversion has to get right."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.filereader import read_file_meta_info, read_preamble
from pynetdicom.dsutils import encode

from dicom_node.index.header import HeaderError, parse_header, parse_leading_header
from dicom_node.synthetic import iter_ct_series


def _file(name: str) -> Path:
    found = get_charset_files(name) if name.startswith("chr") else get_testdata_file(name)
    return Path(found[0] if isinstance(found, list) else found)


FILES = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "JPEG2000.dcm",
    "image_dfl.dcm",
    "chrH31.dcm",
    "chrX1.dcm",
    "chrFren.dcm",
    "chrJapMulti.dcm",
    "chrKoreanMulti.dcm",
    "chrRuss.dcm",
    "chrGreek.dcm",
    "chrArab.dcm",
]


def _dataset_offset(path: Path) -> int:
    with open(path, "rb") as fh:
        read_preamble(fh, False)
        from pydicom.filereader import _read_file_meta_info

        _read_file_meta_info(fh)
        return fh.tell()


def _expected(ds, keyword: str) -> str | None:  # type: ignore[no-untyped-def]
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    return str(value).strip() or None


@pytest.mark.parametrize("name", FILES)
def test_parse_header_matches_pydicom(name: str) -> None:
    path = _file(name)
    ds = dcmread(path, stop_before_pixels=True)
    ts = read_file_meta_info(path).TransferSyntaxUID
    if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds:
        pytest.skip(f"{name} lacks identifying UIDs")
    header = parse_header(path.read_bytes(), ts, _dataset_offset(path))
    assert header.sop_instance_uid == ds.SOPInstanceUID
    assert header.sop_class_uid == ds.SOPClassUID
    assert header.study_uid == ds.StudyInstanceUID
    assert header.series_uid == ds.SeriesInstanceUID
    for field, keyword in [
        ("patient_name", "PatientName"),
        ("patient_id", "PatientID"),
        ("accession_number", "AccessionNumber"),
        ("study_date", "StudyDate"),
        ("modality", "Modality"),
        ("series_description", "SeriesDescription"),
    ]:
        assert getattr(header, field) == _expected(ds, keyword), (name, keyword)
    assert header.rows == ds.get("Rows") and header.columns == ds.get("Columns")
    if ds.get("InstanceNumber") not in (None, ""):
        assert header.instance_number == int(ds.InstanceNumber)
    if "ImageType" in ds:
        assert header.image_type == "\\".join(ds.ImageType)


def test_non_ascii_names_are_decoded_in_the_dataset_character_set() -> None:
    path = _file("chrH31.dcm")  # Japanese, ISO 2022 IR 87
    ts = read_file_meta_info(path).TransferSyntaxUID
    header = parse_header(path.read_bytes(), ts, _dataset_offset(path))
    assert header.patient_name == str(dcmread(path).PatientName)
    assert not header.patient_name.isascii()


def test_garbage_is_a_header_error() -> None:
    with pytest.raises(HeaderError):
        parse_header(bytes(range(256)) * 10, "1.2.840.10008.1.2.1")


@pytest.mark.parametrize("name", FILES)
def test_a_leading_header_is_the_whole_header_or_none(name: str) -> None:
    """What the receive path reads from a dataset's first fragment is exactly what the
    whole dataset gives, or nothing when the fragment does not hold all of the header."""
    path = _file(name)
    ts = read_file_meta_info(path).TransferSyntaxUID
    data = path.read_bytes()[_dataset_offset(path) :]
    try:
        whole = parse_header(data, ts)
    except HeaderError:
        whole = None
    seen = []
    for cut in (*range(0, 2048, 37), 4096, 16384, len(data)):
        head = parse_leading_header(data[:cut], ts)
        assert head is None or head == whole, (name, cut)
        seen.append(head)
    if whole is not None and ts != "1.2.840.10008.1.2.1.99":  # deflated: never ahead
        assert seen[-1] == whole  # the complete dataset always holds its header
        assert seen[0] is None  # nothing read yet: nothing known


def test_a_leading_header_cut_inside_a_long_value_is_none() -> None:
    # A long private element before the indexed ones ends beyond the fragment.
    ds = next(iter_ct_series(1, rows=8, cols=8))
    ds.add_new(0x00091010, "OB", b"\x01" * 10_000)
    ds.StudyDescription = "after the private element"
    encoded = encode(ds, False, True)
    assert parse_leading_header(encoded[:6_000], "1.2.840.10008.1.2.1") is None
    header = parse_leading_header(encoded, "1.2.840.10008.1.2.1")
    assert header is not None and header.sop_instance_uid == ds.SOPInstanceUID
