"""QIDO-RS matching keys (PS3.4 C.2.2.2): the attributes the index matches and returns,
and each key's value as an SQL condition on them.

The keys are columns of the ``instances`` table (and of the results catalogue):
single value, UID lists, ``*``/``?`` wildcards, date and time ranges; PatientName
matches case-insensitively. A value that cannot match is a 400 naming its parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, and_, func, or_

from dicom_node.http.problem import Problem


@dataclass(frozen=True)
class Attr:
    """A QIDO attribute: its keyword, VR, the catalogue column, and its level."""

    keyword: str
    name: str  # column of :func:`dicom_node.http.results.catalogue`
    level: str  # study | series | instance
    # Returned only with a value (PS3.18 table 10.6.3-4's "if present"), never empty.
    if_present: bool = False
    # Looked up once: every element of every result needs them.
    tag: str = field(init=False, repr=False, compare=False)
    vr: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tag", f"{tag_for_keyword(self.keyword):08X}")
        object.__setattr__(self, "vr", dictionary_VR(self.keyword))


ATTRS = {
    a.keyword: a
    for a in [
        Attr("StudyInstanceUID", "study_uid", "study"),
        Attr("PatientName", "patient_name", "study"),
        Attr("PatientID", "patient_id", "study"),
        Attr("PatientBirthDate", "patient_birth_date", "study"),
        Attr("PatientSex", "patient_sex", "study"),
        Attr("StudyDate", "study_date", "study"),
        Attr("StudyTime", "study_time", "study"),
        Attr("AccessionNumber", "accession_number", "study"),
        Attr("ReferringPhysicianName", "referring_physician", "study"),
        Attr("StudyID", "study_id", "study"),
        Attr("StudyDescription", "study_description", "study"),
        Attr("ModalitiesInStudy", "modality", "study"),  # matches any instance's Modality
        Attr("SeriesInstanceUID", "series_uid", "series"),
        Attr("Modality", "modality", "series"),
        Attr("SeriesNumber", "series_number", "series"),
        Attr("SeriesDescription", "series_description", "series"),
        Attr("BodyPartExamined", "body_part", "series"),
        Attr("SeriesDate", "series_date", "series", if_present=True),
        Attr("SeriesTime", "series_time", "series", if_present=True),
        Attr("PerformedProcedureStepStartDate", "pps_start_date", "series", if_present=True),
        Attr("PerformedProcedureStepStartTime", "pps_start_time", "series", if_present=True),
        Attr("SOPInstanceUID", "sop_instance_uid", "instance"),
        Attr("SOPClassUID", "sop_class_uid", "instance"),
        Attr("InstanceNumber", "instance_number", "instance"),
        Attr("Rows", "rows", "instance"),
        Attr("Columns", "columns", "instance"),
        Attr("NumberOfFrames", "number_of_frames", "instance"),
        Attr("ViewPosition", "view_position", "instance"),
    ]
}
LEVELS = ("study", "series", "instance")
# PS3.5 6.2: DA is YYYYMMDD; TM is HH, HHMM, HHMMSS or HHMMSS.F{1,6} (SS 60: leap second).
_DATE = re.compile(r"[0-9]{8}")
_TIME = re.compile(r"([01][0-9]|2[0-3])([0-5][0-9](([0-5][0-9]|60)(\.[0-9]{1,6})?)?)?")
MAX_INT = 2**31 - 1  # IS and US values fit; larger ones match nothing and overflow SQL


def bad_value(parameter: str, value: str, why: str) -> Problem:
    """A 400 problem naming the query parameter and its value (also as the extension
    members ``parameter`` and ``value``)."""
    return Problem(
        400, "Bad Request", f"{parameter}={value!r}: {why}", parameter=parameter, value=value
    )


def attribute_of(key: str, parameter: str = "", value: str = "") -> str:
    """The keyword of a query key given as keyword or 8 hex digits; Problem 400 if none,
    naming ``parameter`` (default: the key) and ``value``."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        keyword = keyword_for_tag(int(key, 16))
    else:
        keyword = key if tag_for_keyword(key) is not None else ""
    if not keyword:
        why = f"{key!r} is not a DICOM attribute keyword or tag"
        raise bad_value(parameter or key, value, why)
    return keyword


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _valid(part: str, pattern: re.Pattern[str], what: str) -> bool:
    if not pattern.fullmatch(part):
        return False
    if what == "date":  # 20241345 has the shape of a date, not its meaning
        try:
            datetime.strptime(part, "%Y%m%d")
        except ValueError:
            return False
    return True


def _range(column: Any, keyword: str, value: str, what: str) -> ColumnElement:
    """Single value or range matching of a DA or TM value (PS3.4 C.2.2.2.5): ``A``,
    ``A-B`` (A <= B, both ends included), ``A-``, ``-B``; anything else is a 400."""
    pattern = _DATE if what == "date" else _TIME
    low, sep, high = value.partition("-")
    for part in (low, high):
        if part and not _valid(part, pattern, what):
            raise bad_value(keyword, value, f"expected a {what} or a {what} range")
    if not sep:
        return column == low
    if not low and not high:
        raise bad_value(keyword, value, f"{what} range has no bound")
    # A time range's upper end includes all of its last unit (e.g. 12 -> 12xxxx).
    upper = high + "\uffff" if what == "time" else high
    if low and high and low > upper:
        # C.2.2.2.5 defines "A-B" only where A is less than or equal to B.
        raise bad_value(keyword, value, f"{what} range ends before it starts")
    conditions = []
    if low:
        conditions.append(column >= low)
    if high:
        conditions.append(column <= upper)
    return and_(*conditions)


def condition(src: Any, attr: Attr, value: str, *, indexed: bool = True) -> ColumnElement:
    """The SQL condition matching ``value`` on ``attr`` of ``src`` (PS3.4 C.2.2.2).
    ``indexed=False`` keeps SQLite from using the column's index for it (the same
    condition on ``column || ''``, NULL as before): see
    :func:`dicom_node.http.qido._walk_by_study`."""
    column, vr = src.c[attr.name], attr.vr
    if not indexed:
        column = column.concat("")
    if vr == "UI":
        uids = [u.strip() for u in re.split(r"[\\,]", value) if u.strip()]
        return column.in_(uids)
    if vr == "DA":
        return _range(column, attr.keyword, value, "date")
    if vr == "TM":
        return _range(column, attr.keyword, value, "time")
    if vr in ("IS", "US"):
        number = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", number):
            raise bad_value(attr.keyword, value, "not an integer")
        if len(number.lstrip("+-0")) > 10 or abs(int(number)) > MAX_INT:
            raise bad_value(attr.keyword, value, "out of range")
        return column == int(number)
    # A list of code strings (PS3.18 8.3.4.1: comma separated; "\\" as in DIMSE) matches
    # any of them: a CS value holds neither character.
    values = [v for v in re.split(r"[\\,]", value) if v] if vr == "CS" else [value]
    conditions = []
    for v in values:
        # PN: case-insensitive (PS3.4 C.2.2.2.1 allows it). Without a wildcard the whole
        # value must match: "Doe" does not match "Doe^John" (that needs "Doe^*").
        if vr == "PN":
            conditions.append(func.lower(column).like(_like(v.lower()), escape="\\"))
        elif "*" in v or "?" in v:
            conditions.append(column.like(_like(v), escape="\\"))
        else:
            conditions.append(column == v)
    return or_(*conditions)
