"""The index header parser against pydicom's own reading of the same files: every transfer
syntax family and character set the parser's direct value conversion has to get right."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.filereader import read_file_meta_info, read_preamble
from pynetdicom.dsutils import encode

from dicom_node.index.header import HEADER_TAGS, HeaderError, header_from_elements, parse_header
from dicom_node.store.check import check_dataset
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
        ("series_date", "SeriesDate"),
        ("series_time", "SeriesTime"),
        ("pps_start_date", "PerformedProcedureStepStartDate"),
        ("pps_start_time", "PerformedProcedureStepStartTime"),
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
def test_the_header_from_the_structure_walk_is_the_parsed_header(name: str) -> None:
    """The receive path builds the header from the elements its structure check picked
    up on its walk (no pydicom parse): the same header as parse_header, or the same
    HeaderError."""
    path = _file(name)
    ts = read_file_meta_info(path).TransferSyntaxUID
    data = path.read_bytes()
    offset = _dataset_offset(path)
    elements = check_dataset(data, ts, offset, HEADER_TAGS)
    if elements is None:  # deflated: not walked, the receive path parses it
        assert ts == "1.2.840.10008.1.2.1.99"
        return
    try:
        whole = parse_header(data, ts, offset)
    except HeaderError as err:
        with pytest.raises(HeaderError) as raised:
            header_from_elements(elements, ts)
        assert str(raised.value) == str(err)
        return
    assert header_from_elements(elements, ts) == whole


def test_values_over_4_kb_are_left_out_of_the_walked_header_as_of_the_parsed_one() -> None:
    ds = next(iter_ct_series(1, rows=8, cols=8))
    ds.StudyDescription = "x" * 5000
    ds.PatientName = "Doe^Jane"
    for implicit in (False, True):
        encoded = encode(ds, implicit, True)
        ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        header = header_from_elements(check_dataset(encoded, ts, 0, HEADER_TAGS) or {}, ts)
        assert header == parse_header(encoded, ts)
        assert header.study_description is None and header.patient_name == "Doe^Jane"
        assert header.bounded == ("StudyDescription not indexed (over 4 KB)",)


def test_series_and_performed_procedure_step_dates_and_times_are_read() -> None:
    """SeriesDate/Time and PerformedProcedureStepStartDate/Time (the latter past Columns,
    where the parse used to stop) as pydicom reads them, by the walk and by the parse;
    absent, they are None."""
    ds = next(iter_ct_series(1, rows=8, cols=8))
    ds.SeriesDate, ds.SeriesTime = "20240229", "083000.5"
    ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20240228", "2359"
    bare = next(iter_ct_series(1, rows=8, cols=8))
    del bare.SeriesDate, bare.SeriesTime
    for implicit in (False, True):
        ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        for d, expected in (
            (ds, ("20240229", "083000.5", "20240228", "2359")),
            (bare, (None, None, None, None)),
        ):
            encoded = encode(d, implicit, True)
            parsed = parse_header(encoded, ts)
            walked = header_from_elements(check_dataset(encoded, ts, 0, HEADER_TAGS) or {}, ts)
            assert walked == parsed
            got = (parsed.series_date, parsed.series_time)
            assert (*got, parsed.pps_start_date, parsed.pps_start_time) == expected


def test_values_longer_than_their_column_are_bounded_alike_by_the_walk_and_the_parse() -> None:
    """Free text over its column is clipped, anything else left out, by both paths (the
    parse is the path of deflated and malformed files), each noted once."""
    ds = next(iter_ct_series(1, rows=8, cols=8))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDescription = "Thorax mit Kontrastmittel, Spätphase " * 4  # LO: 148 characters
    ds.StudyTime = "101112.1234567890123"  # 20 characters, over 16
    ds.PatientID = "P" * 65
    ds.ImageType = ["ORIGINAL", "PRIMARY", *["AXIAL"] * 30]
    for implicit in (False, True):
        encoded = encode(ds, implicit, True)
        ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        header = header_from_elements(check_dataset(encoded, ts, 0, HEADER_TAGS) or {}, ts)
        assert header == parse_header(encoded, ts)
        assert header.study_description == ds.StudyDescription[:64].rstrip()
        assert header.study_time is None and header.patient_id is None
        assert header.image_type is None
        assert [n.split()[0] for n in header.bounded] == [
            "PatientID",
            "ImageType",
            "StudyTime",
            "StudyDescription",
        ]


def test_invalid_non_ascii_values_are_read_without_pydicom_validation_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pydicom's validation of a value on read logs a warning and warns (two log lines
    in the node, naming no instance); the receive path notes what it bounds itself."""
    ds = next(iter_ct_series(1, rows=8, cols=8))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Zoë Müller^" * 10 + "=Zoë"  # PN components over 64 characters
    ds.PatientID = "Zoë " * 30  # LO: 120 characters
    ds.AccessionNumber = "ü" * 20  # SH: 20 characters
    ds.StudyDescription = "Spätphase " * 10  # LO
    encoded = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own, on writing these
        for implicit in (False, True):
            encoded.append((encode(ds, implicit, True), implicit))
    caplog.set_level(logging.WARNING)
    caplog.clear()  # pydicom's, on setting these values
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        for data, implicit in encoded:
            ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
            header = header_from_elements(check_dataset(data, ts, 0, HEADER_TAGS) or {}, ts)
            assert header == parse_header(data, ts)
            assert header.patient_name and not header.patient_name.isascii()
            assert header.patient_id is None and header.accession_number == "ü" * 20
            assert [n.split()[0] for n in header.bounded] == ["PatientID", "StudyDescription"]
    assert [str(w.message) for w in warned] == []
    assert [r.getMessage() for r in caplog.records] == []


def test_several_values_of_a_single_valued_attribute_are_not_indexed_as_a_python_list() -> None:
    """A backslash in a single-valued attribute makes several values: names and
    descriptions keep the file's text ("A\\B"), anything else is left out (noted); an
    identifying UID of several values is refused. Never Python's "['A', 'B']"."""
    ds = next(iter_ct_series(1, rows=8, cols=8))
    ds.PatientID = "A\\B"
    ds.StudyTime = "1010\\1111"
    ds.PatientName = "Doe^John\\Smith^Jane"
    encoded = encode(ds, False, True)
    ts = "1.2.840.10008.1.2.1"
    header = header_from_elements(check_dataset(encoded, ts, 0, HEADER_TAGS) or {}, ts)
    assert header == parse_header(encoded, ts)
    assert header.patient_name == "Doe^John\\Smith^Jane"
    assert header.patient_id is None and header.study_time is None
    assert header.bounded == (
        "PatientID not indexed (2 values)",
        "StudyTime not indexed (2 values)",
    )
    ds.SeriesInstanceUID = "1.2.3\\1.2.4"
    encoded = encode(ds, False, True)
    with pytest.raises(HeaderError, match="SeriesInstanceUID holds 2 values"):
        header_from_elements(check_dataset(encoded, ts, 0, HEADER_TAGS) or {}, ts)
    with pytest.raises(HeaderError, match="SeriesInstanceUID holds 2 values"):
        parse_header(encoded, ts)


@pytest.mark.parametrize(
    "values, expected",
    [
        (  # PS3.5 6.2 asks DA readers to support yyyy.mm.dd (pydicom's color-pl.dcm)
            {
                "StudyDate": "1994.11.05",
                "SeriesDate": "1994.11.06",
                "PatientBirthDate": "1950.01.31",
                "PerformedProcedureStepStartDate": "1994.11.04",
            },
            {
                "study_date": "19941105",
                "series_date": "19941106",
                "patient_birth_date": "19500131",
                "pps_start_date": "19941104",
            },
        ),
        (  # and TM readers hh:mm:ss.frac
            {
                "StudyTime": "11:20:00",
                "SeriesTime": "11:21:05.25",
                "PerformedProcedureStepStartTime": "11:19",
            },
            {"study_time": "112000", "series_time": "112105.25", "pps_start_time": "1119"},
        ),
    ],
    ids=["dates", "times"],
)
def test_acr_nema_dates_and_times_are_indexed_as_what_they_mean(
    values: dict[str, str], expected: dict[str, str]
) -> None:
    """A date ``yyyy.mm.dd`` is indexed as ``yyyymmdd`` (cut to the column's 8
    characters it was ``1994.11.``, returned so by QIDO-RS and never matched by a date),
    a time ``hh:mm:ss.frac`` as ``hhmmss.frac`` (no time key matched it, and
    ``11:20:00`` is refused as one), alike by the walk and the parse."""
    ds = next(iter_ct_series(1, rows=8, cols=8))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    for implicit in (False, True):
        ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        encoded = encode(ds, implicit, True)
        parsed = parse_header(encoded, ts)
        walked = header_from_elements(check_dataset(encoded, ts, 0, HEADER_TAGS) or {}, ts)
        assert walked == parsed
        assert {field: getattr(parsed, field) for field in expected} == expected


def test_integers_out_of_the_is_range_are_not_indexed_alike_by_the_walk_and_the_parse() -> None:
    """IS holds -2**31 to 2**31 - 1 (PS3.5), as PostgreSQL's INTEGER: a value outside
    (invalid, but sent) failed the INSERT; it is left out and noted."""
    ds = next(iter_ct_series(1, rows=8, cols=8))
    ds.InstanceNumber, ds.SeriesNumber = "999999999999", "2147483647"
    for implicit in (False, True):
        encoded = encode(ds, implicit, True)
        ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        header = header_from_elements(check_dataset(encoded, ts, 0, HEADER_TAGS) or {}, ts)
        assert header == parse_header(encoded, ts)
        assert header.instance_number is None and header.series_number == 2**31 - 1
        assert header.bounded == ("InstanceNumber not indexed (out of range)",)


def test_invalid_integer_strings_are_noted_without_pydicom_validation_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ds = next(iter_ct_series(1, rows=8, cols=8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own, on writing these
        ds.add_new("InstanceNumber", "LO", "abc")  # pydicom writes no such IS value
        ds.add_new("SeriesNumber", "LO", "1.5")
        encoded = [(encode(ds, implicit, True), implicit) for implicit in (False, True)]
    for tag in (b"\x20\x00\x13\x00", b"\x20\x00\x11\x00"):  # explicit VR: IS
        encoded[0] = (encoded[0][0].replace(tag + b"LO", tag + b"IS"), False)
        assert tag + b"IS" in encoded[0][0]
    caplog.set_level(logging.WARNING)
    caplog.clear()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        for data, implicit in encoded:
            ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
            header = header_from_elements(check_dataset(data, ts, 0, HEADER_TAGS) or {}, ts)
            assert header == parse_header(data, ts)
            assert header.instance_number is None and header.series_number is None
            assert header.bounded == (
                "InstanceNumber not indexed (not an integer)",
                "SeriesNumber not indexed (not an integer)",
            )
    assert [str(w.message) for w in warned] == []
    assert [r.getMessage() for r in caplog.records] == []
