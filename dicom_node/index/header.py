"""Read the attributes the index needs from an encoded dataset, never touching pixels.

Only the top-level elements up to (0040,0245) Performed Procedure Step Start Time are
read (every indexed attribute lies below it, and Pixel Data far above), and only the
indexed ones are kept. Their values are converted by pydicom's value converters
directly, in the dataset's character set, without building pydicom data elements: that
skips pydicom's validation of each value on read, which cost more than reading the
header itself. Each value's bounds for its index column: :mod:`.header_values`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from os import PathLike
from typing import Any, BinaryIO

from pydicom.charset import convert_encodings
from pydicom.config import IGNORE
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import PersonName
from pydicom.values import convert_single_string, convert_text, convert_value

from dicom_node.index import header_values

_INDEXED = (
    "SpecificCharacterSet",
    "ImageType",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyDate",
    "AccessionNumber",
    "Modality",
    "SeriesDescription",
    "PatientName",
    "PatientID",
    "BodyPartExamined",
    "ViewPosition",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "InstanceNumber",
    "NumberOfFrames",
    "Rows",
    "Columns",
    # for QIDO-RS's default return attributes
    "StudyTime",
    "StudyDescription",
    "StudyID",
    "SeriesNumber",
    "PatientBirthDate",
    "PatientSex",
    "ReferringPhysicianName",
    "SeriesDate",
    "SeriesTime",
    "PerformedProcedureStepStartDate",  # (0040,0244): past Columns
    "PerformedProcedureStepStartTime",
)
_TAG_OF = {k: tag_for_keyword(k) for k in _INDEXED}
_TAGS = list(_TAG_OF.values())
_LAST_TAG = int(max(_TAGS))  # (0040,0245) Performed Procedure Step Start Time


def _past(tag: BaseTag) -> bool:
    # As plain ints: BaseTag's ">" is Python code making two more comparisons, and this
    # runs for every element of every header.
    return int.__gt__(tag, _LAST_TAG)


def _past_indexed(tag: BaseTag, vr: str | None, length: int) -> bool:
    return _past(tag)


class HeaderError(ValueError):
    """The dataset cannot be understood (unparseable or missing identifying UIDs)."""


class MissingIdentifiers(HeaderError):
    """An identifying UID (SOP Class/Instance, Study, Series) is missing or unusable."""


@dataclass(frozen=True)
class InstanceHeader:
    """The identifying and key attributes of one instance."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    modality: str | None = None
    body_part: str | None = None
    series_description: str | None = None
    view_position: str | None = None
    image_type: str | None = None
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int | None = None
    study_time: str | None = None
    study_description: str | None = None
    study_id: str | None = None
    series_number: int | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    referring_physician: str | None = None
    series_date: str | None = None
    series_time: str | None = None
    pps_start_date: str | None = None  # PerformedProcedureStepStartDate
    pps_start_time: str | None = None  # PerformedProcedureStepStartTime
    # What was indexed clipped or left out, one note per attribute (the file keeps the
    # values whole), e.g. "StudyTime not indexed (40 characters, over 16)".
    bounded: tuple[str, ...] = ()


def _name(text: str) -> str:
    """A PN value's text as pydicom reads it (no trailing "=" of empty groups)."""
    return str(PersonName(text, validation_mode=IGNORE))


def _person_names(raw: bytes, encodings: list[str], vr: None) -> str | MultiValue[str]:
    names = convert_text(raw, encodings, vr)
    return MultiValue(_name, names) if isinstance(names, MultiValue) else _name(names)


# Text VRs whose value pydicom validates on conversion (length, characters): converted
# here by pydicom's own converters without a VR, which skips that validation. Its
# warnings (a ``pydicom`` log line and a Python warning per value) name no instance; the
# receive path notes what it bounds, once per instance. pydicom's switch for this,
# ``config.settings.reading_validation_mode``, is process-wide and the node receives on
# many threads: setting it around a read would change what other threads see.
_TEXT_OF_VR: dict[str, Callable[..., Any]] = {
    "SH": convert_text,
    "LO": convert_text,
    "UC": convert_text,
    "PN": _person_names,  # the name as text: the index keeps its string form
    "ST": convert_single_string,
    "LT": convert_single_string,
    "UT": convert_single_string,
    "IS": convert_text,  # as text: the index makes the integer (header_values.integer)
}


def _converted(vr: str, item: RawDataElement, encodings: list[str]) -> Any:
    """The value of ``item`` as pydicom converts it, text unvalidated (above)."""
    text = _TEXT_OF_VR.get(vr)
    if text is not None and item.length and isinstance(item.value, bytes):
        return text(item.value, encodings, None)
    return convert_value(vr, item, encodings)


# A value over this many bytes is not read (the walk's COLLECT_MAX, the parse's
# defer_size), so not indexed: noted as such.
_UNREAD = "not indexed (over 4 KB)"
_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_NOT_NOTED = frozenset({"SpecificCharacterSet", *_IDENTIFYING})  # refused or not indexed


def _values(ds: Dataset) -> dict[str, Any]:
    """The indexed attributes of ``ds`` (raw, as read) by keyword, converted; one over
    4 KB (unread) as :data:`_UNREAD`."""
    values: dict[str, Any] = {}
    encodings = convert_encodings(None)
    for keyword, tag in _TAG_OF.items():  # SpecificCharacterSet first
        item = ds.get_item(tag, keep_deferred=True)
        if isinstance(item, RawDataElement) and item.value is None and item.length:
            values[keyword] = _UNREAD  # too long to have been read (deferred)
            continue
        if item is None or item.value is None:  # absent, or empty
            continue
        if isinstance(item, DataElement):  # pydicom converted it while reading
            values[keyword] = item.value
        else:
            vr = item.VR if item.VR not in (None, "UN") else dictionary_VR(tag)
            values[keyword] = _converted(vr, item, encodings)
        if keyword == "SpecificCharacterSet" and values[keyword]:
            encodings = convert_encodings(values[keyword])
    return values


UID_MAX = 64
INFLATE_MAX = 16 * 2**20  # bytes of a deflated dataset inflated to read its header


def _read_values(
    fp: BinaryIO, ts: UID, stop_when: Callable[[BaseTag, str | None, int], bool]
) -> dict[str, Any]:
    return _values(
        read_dataset(
            fp,
            ts.is_implicit_VR,
            ts.is_little_endian,
            stop_when=stop_when,
            defer_size="4 KB",
            specific_tags=_TAGS,
        )
    )


_INTEGER_FIELDS = {
    "instance_number": "InstanceNumber",
    "rows": "Rows",
    "columns": "Columns",
    "number_of_frames": "NumberOfFrames",
    "series_number": "SeriesNumber",
}


def _header(values: dict[str, Any]) -> InstanceHeader:
    """The header made of ``values``; HeaderError if an identifying UID is missing. A
    value over 4 KB (:data:`_UNREAD`) is not indexed, noted unless it is refused or
    not indexed anyway."""
    unread = [k for k, v in values.items() if v is _UNREAD]
    for keyword in unread:
        del values[keyword]
    uids = {k: header_values.plain(values, k) for k in _IDENTIFYING}
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise MissingIdentifiers(f"dataset lacks {', '.join(missing)}")
    too_long = [k for k, v in uids.items() if v and len(v) > UID_MAX]
    if too_long:
        raise MissingIdentifiers(f"{', '.join(too_long)} longer than {UID_MAX} characters")
    several = [k for k in uids if header_values.count(values, k) > 1]
    if several:
        raise MissingIdentifiers(
            ", ".join(f"{k} holds {header_values.count(values, k)} values" for k in several)
        )
    with_nul = [k for k, v in uids.items() if v and "\0" in v]
    if with_nul:
        raise MissingIdentifiers(f"{', '.join(with_nul)} holds a NUL character")
    notes: list[str] = []
    texts = header_values.texts(values, notes)
    numbers = {
        field: header_values.integer(values, keyword, notes)
        for field, keyword in _INTEGER_FIELDS.items()
    }
    notes += [f"{k} {_UNREAD}" for k in unread if k not in _NOT_NOTED]
    return InstanceHeader(
        sop_class_uid=uids["SOPClassUID"] or "",
        sop_instance_uid=uids["SOPInstanceUID"] or "",
        study_uid=uids["StudyInstanceUID"] or "",
        series_uid=uids["SeriesInstanceUID"] or "",
        bounded=tuple(notes),
        **texts,
        **numbers,
    )


def parse_header(
    dataset: bytes | BinaryIO, transfer_syntax: str, offset: int = 0
) -> InstanceHeader:
    """Parse the encoded dataset (without file meta) up to, not including, Pixel Data.

    ``dataset`` may be bytes or a seekable stream, read from ``offset`` (not copied).
    """
    try:
        ts = UID(transfer_syntax)
        fp: BinaryIO = BytesIO(dataset) if isinstance(dataset, bytes) else dataset
        fp.seek(offset)
        if ts == DeflatedExplicitVRLittleEndian:
            # Only the header is needed: inflate no more than INFLATE_MAX (a few bytes
            # can inflate to gigabytes).
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            fp = BytesIO(inflater.decompress(fp.read(), INFLATE_MAX))
        values = _read_values(fp, ts, _past_indexed)
    except Exception as err:  # pydicom raises many kinds on garbage
        raise HeaderError(f"dataset cannot be parsed: {type(err).__name__}: {err}") from err
    return _header(values)


def dataset_offset(head: bytes) -> int:
    """Where the dataset starts in a PS3.10 file (after preamble and File Meta).

    Raises ValueError if ``head`` (the file's first bytes) does not start with a preamble
    and an explicit VR little endian (0002,0000) File Meta Information Group Length.
    """
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        raise ValueError("not a DICOM file with a File Meta group length")
    return 144 + int.from_bytes(head[140:144], "little")


def parse_file_header(path: str | PathLike[str], transfer_syntax: str) -> InstanceHeader:
    """:func:`parse_header` of the dataset of the PS3.10 file at ``path`` (after its File
    Meta); HeaderError if it is not such a file. The path for a file the structure walk
    did not read (deflated, or refused by it)."""
    with open(path, "rb") as fh:
        try:
            offset = dataset_offset(fh.read(144))
        except ValueError as err:
            raise HeaderError(f"not a DICOM PS3.10 file ({err})") from err
        return parse_header(fh, transfer_syntax, offset)


HEADER_TAGS = frozenset(int(t) for t in _TAGS)  # the top-level elements the index reads
_VR_OF = {int(t): dictionary_VR(t) for t in _TAGS}
# VRs whose value, when it is plain ASCII (no escape sequence, no backslash), pydicom
# converts to that text less trailing spaces and NULs in every character set.
_PLAIN_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "TM", "UI", "SH", "LO", "ST", "LT", "UC", "UT", "PN"}
)


def header_from_elements(
    elements: dict[int, tuple[bytes | None, bytes]], transfer_syntax: str
) -> InstanceHeader:
    """The header made of the top-level elements of :data:`HEADER_TAGS` that a walk of
    the encoded dataset found (:func:`dicom_node.store.check.check_file`): tag ->
    (explicit VR or None for implicit VR, value bytes; None for a value over 4 KB). The
    values are those :func:`parse_header` reads (plain ASCII text and US decoded here,
    anything else by pydicom's converters); raises HeaderError as it does."""
    ts = UID(transfer_syntax)
    implicit, little = ts.is_implicit_VR, ts.is_little_endian
    values: dict[str, Any] = {}
    encodings = convert_encodings(None)
    try:
        for keyword, tag in _TAG_OF.items():  # SpecificCharacterSet first
            found = elements.get(int(tag))
            if found is None:
                continue
            explicit_vr, raw = found
            if raw is None:  # over 4 KB: left unread by the walk
                values[keyword] = _UNREAD
                continue
            vr = explicit_vr.decode("ascii") if explicit_vr else None
            if vr in (None, "UN"):
                vr = _VR_OF[int(tag)]
            if vr in _PLAIN_TEXT_VRS and raw.isascii() and b"\\" not in raw and b"\x1b" not in raw:
                values[keyword] = raw.decode("ascii").rstrip(" \0")
            elif vr == "US" and len(raw) == 2:
                values[keyword] = int.from_bytes(raw, "little" if little else "big")
            else:
                item = RawDataElement(tag, vr, len(raw), raw, 0, implicit, little)
                values[keyword] = _converted(vr, item, encodings)
            if keyword == "SpecificCharacterSet" and values[keyword]:
                encodings = convert_encodings(values[keyword])
    except Exception as err:  # pydicom's converters raise many kinds on garbage
        raise HeaderError(f"dataset cannot be parsed: {type(err).__name__}: {err}") from err
    return _header(values)
