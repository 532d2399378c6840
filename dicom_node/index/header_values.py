"""The index's value of each attribute the header reads: bounded to its column.

The index keeps a value its column holds. A longer one (invalid, but vendors send them)
is clipped if it is free text, of which a prefix still says the same, and otherwise left
out; a value holding NUL, or several values of a single-valued attribute, likewise. Each
is noted, for the receive path's one warning per instance. Dates and times in the
ACR-NEMA forms are indexed as the DICOM values they mean. The file keeps every value
whole.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.multival import MultiValue

from dicom_node.index.tables import Group, Instance

# The InstanceHeader field (its column in ``instances``) of each indexed text attribute.
TEXT_FIELDS = {
    "PatientID": "patient_id",
    "PatientName": "patient_name",
    "AccessionNumber": "accession_number",
    "StudyDate": "study_date",
    "Modality": "modality",
    "BodyPartExamined": "body_part",
    "SeriesDescription": "series_description",
    "ViewPosition": "view_position",
    "ImageType": "image_type",
    "StudyTime": "study_time",
    "StudyDescription": "study_description",
    "StudyID": "study_id",
    "PatientBirthDate": "patient_birth_date",
    "PatientSex": "patient_sex",
    "ReferringPhysicianName": "referring_physician",
    "SeriesDate": "series_date",
    "SeriesTime": "series_time",
    "PerformedProcedureStepStartDate": "pps_start_date",
    "PerformedProcedureStepStartTime": "pps_start_time",
}


def _column_length(field: str) -> int:
    """The shortest VARCHAR that holds ``field`` (in ``instances``, and in ``groups``
    where a group keeps a copy): PostgreSQL refuses a longer value (in characters)."""
    lengths = [
        table.c[field].type.length
        for table in (Instance.__table__, Group.__table__)
        if field in table.c
    ]
    return min(lengths)


# Longest value each indexed text column holds, from the table definitions. A longer
# value (invalid, but vendors send them) is indexed clipped if it is free text, of which
# a prefix still says the same; anything else (identifiers, codes, dates, times, lists)
# is left out: a prefix of it would read as another valid value. The file keeps it whole.
_LIMITS = {keyword: _column_length(field) for keyword, field in TEXT_FIELDS.items()}
_CLIPPABLE = frozenset(
    {"PatientName", "ReferringPhysicianName", "SeriesDescription", "StudyDescription"}
)


def _bounded(keyword: str, text: str, notes: list[str]) -> str | None:
    """``text`` if its column holds it; else clipped or left out (noted in ``notes``).
    PostgreSQL refuses NUL in text: a value holding one is left out too."""
    if "\0" in text:
        notes.append(f"{keyword} not indexed (holds a NUL character)")
        return None
    limit = _LIMITS.get(keyword)
    if limit is None or len(text) <= limit:
        return text or None
    if keyword in _CLIPPABLE:
        notes.append(f"{keyword} clipped to {limit} of its {len(text)} characters")
        return text[:limit].rstrip() or None
    notes.append(f"{keyword} not indexed ({len(text)} characters, over {limit})")
    return None


def plain(values: dict[str, Any], keyword: str) -> str | None:
    """The value as text; several values (a backslash in the encoded value) joined as
    the file has them, never Python's "['A', 'B']"."""
    value = values.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue):
        return "\\".join(str(v).strip() for v in value).strip() or None
    return str(value).strip() or None


def count(values: dict[str, Any], keyword: str) -> int:
    value = values.get(keyword)
    return len(value) if isinstance(value, MultiValue) else 1


def text(values: dict[str, Any], keyword: str, notes: list[str]) -> str | None:
    """A single-valued attribute's text, bounded; of several values (invalid), the file's
    text if free text, else nothing (noted)."""
    value = plain(values, keyword)
    if value is None:
        return None
    n = count(values, keyword)
    if n > 1 and keyword not in _CLIPPABLE:
        notes.append(f"{keyword} not indexed ({n} values)")
        return None
    return _bounded(keyword, value, notes)


_ACR_NEMA_DATE = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})")
_ACR_NEMA_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?")
DATES = frozenset(
    {"StudyDate", "SeriesDate", "PatientBirthDate", "PerformedProcedureStepStartDate"}
)
TIMES = frozenset({"StudyTime", "SeriesTime", "PerformedProcedureStepStartTime"})


def date_or_time(values: dict[str, Any], keyword: str, notes: list[str]) -> str | None:
    """A DA or TM value; one in the ACR-NEMA form ``yyyy.mm.dd`` or ``hh:mm:ss.frac``
    (PS3.5 6.2: readers should support it) as the ``yyyymmdd`` or ``hhmmss.frac`` it
    means, which the column holds and date and time keys match (cut to 8, a date was
    ``yyyy.mm.``)."""
    value = values.get(keyword)
    form = _ACR_NEMA_DATE if keyword in DATES else _ACR_NEMA_TIME
    found = form.fullmatch(value.strip()) if isinstance(value, str) else None
    if found:
        return "".join(p or "" for p in found.groups())
    return text(values, keyword, notes)


def multi(values: dict[str, Any], keyword: str, notes: list[str]) -> str | None:
    value = values.get(keyword)
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, str | bytes) else list(value)
    return _bounded(keyword, "\\".join(str(v).strip() for v in items), notes)


# IS's range (PS3.5 6.2), which PostgreSQL's INTEGER holds: a larger value (invalid, but
# sent) failed the INSERT, a deterministic error the sender retried.
INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1


def integer(values: dict[str, Any], keyword: str, notes: list[str]) -> int | None:
    """An integer attribute's value if its column holds it; else nothing (noted)."""
    value = values.get(keyword)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):  # IS read as text: "1.5", "abc", several values
        notes.append(f"{keyword} not indexed (not an integer)")
        return None
    if not INTEGER_MIN <= number <= INTEGER_MAX:
        notes.append(f"{keyword} not indexed (out of range)")
        return None
    return number


def texts(values: dict[str, Any], notes: list[str]) -> dict[str, str | None]:
    """Every indexed text attribute of ``values`` by its InstanceHeader field."""
    return {
        field: multi(values, keyword, notes)
        if keyword == "ImageType"
        else date_or_time(values, keyword, notes)
        if keyword in DATES | TIMES
        else text(values, keyword, notes)
        for keyword, field in TEXT_FIELDS.items()
    }
