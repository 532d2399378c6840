"""Read the attributes the index needs from an encoded dataset, never touching pixels.

Only the top-level elements up to (0028,0011) Columns are read (every indexed attribute
lies below it, and Pixel Data far above), and only the indexed ones are kept and
converted.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from io import BytesIO
from typing import BinaryIO

from pydicom.datadict import tag_for_keyword
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

_INDEXED = ("SpecificCharacterSet", "ImageType", "SOPClassUID", "SOPInstanceUID",
            "StudyDate", "AccessionNumber", "Modality", "SeriesDescription", "PatientName",
            "PatientID", "BodyPartExamined", "ViewPosition", "StudyInstanceUID",
            "SeriesInstanceUID", "InstanceNumber", "NumberOfFrames", "Rows", "Columns")
_TAGS = [tag_for_keyword(k) for k in _INDEXED]
_LAST_TAG = max(_TAGS)  # (0028,0011) Columns


def _past_indexed(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag > _LAST_TAG


class HeaderError(ValueError):
    """The dataset cannot be understood (unparseable or missing identifying UIDs)."""


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


def _text(ds, keyword: str) -> str | None:  # type: ignore[no-untyped-def]
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    return str(value).strip() or None


def _multi(ds, keyword: str) -> str | None:  # type: ignore[no-untyped-def]
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    values = [value] if isinstance(value, str) else list(value)
    return "\\".join(str(v).strip() for v in values)[:128] or None


def _int(ds, keyword: str) -> int | None:  # type: ignore[no-untyped-def]
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_header(dataset: bytes | BinaryIO, transfer_syntax: str,
                 offset: int = 0) -> InstanceHeader:
    """Parse the encoded dataset (without file meta) up to, not including, Pixel Data.

    ``dataset`` may be bytes or a seekable stream, read from ``offset`` (not copied).
    """
    try:
        ts = UID(transfer_syntax)
        fp: BinaryIO = BytesIO(dataset) if isinstance(dataset, bytes) else dataset
        fp.seek(offset)
        if ts == DeflatedExplicitVRLittleEndian:
            fp = BytesIO(zlib.decompress(fp.read(), -zlib.MAX_WBITS))
        ds = read_dataset(fp, ts.is_implicit_VR, ts.is_little_endian,
                          stop_when=_past_indexed, defer_size="4 KB", specific_tags=_TAGS)
        sop_class = _text(ds, "SOPClassUID")
        sop_uid = _text(ds, "SOPInstanceUID")
        study = _text(ds, "StudyInstanceUID")
        series = _text(ds, "SeriesInstanceUID")
        header = InstanceHeader(
            sop_class_uid=sop_class or "",
            sop_instance_uid=sop_uid or "",
            study_uid=study or "",
            series_uid=series or "",
            patient_id=_text(ds, "PatientID"),
            patient_name=_text(ds, "PatientName"),
            accession_number=_text(ds, "AccessionNumber"),
            study_date=_text(ds, "StudyDate"),
            modality=_text(ds, "Modality"),
            body_part=_text(ds, "BodyPartExamined"),
            series_description=_text(ds, "SeriesDescription"),
            view_position=_text(ds, "ViewPosition"),
            image_type=_multi(ds, "ImageType"),
            instance_number=_int(ds, "InstanceNumber"),
            rows=_int(ds, "Rows"),
            columns=_int(ds, "Columns"),
            number_of_frames=_int(ds, "NumberOfFrames"),
        )
    except Exception as err:  # pydicom raises many kinds on garbage
        raise HeaderError(f"dataset cannot be parsed: {type(err).__name__}: {err}") from err
    missing = [k for k, v in (("SOPClassUID", sop_class), ("SOPInstanceUID", sop_uid),
                              ("StudyInstanceUID", study), ("SeriesInstanceUID", series))
               if not v]
    if missing:
        raise HeaderError(f"dataset lacks {', '.join(missing)}")
    return header
