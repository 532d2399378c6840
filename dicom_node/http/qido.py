"""QIDO-RS (PS3.18 section 10.6): study, series and instance searches over the index.

Everything answered comes from the ``instances`` table (never from files): the matching
keys below are its columns, studies and series are aggregates of their instances.
Matching follows PS3.4 C.2.2.2: single value, UID lists, ``*``/``?`` wildcards, date and
time ranges; PatientName matches case-insensitively. ``limit``/``offset`` page the result,
``includefield`` adds the study's attributes to series and instance results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from dicom_node.http.links import uid_path
from dicom_node.http.problem import Problem
from dicom_node.http.results import RESULTS, catalogue
from dicom_node.index.tables import Instance


@dataclass(frozen=True)
class Attr:
    """A QIDO attribute: its keyword, VR, the catalogue column, and its level."""

    keyword: str
    name: str  # column of :func:`dicom_node.http.results.catalogue`
    level: str  # study | series | instance
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
_NUMBER = re.compile(r"[0-9]+")
MAX_LIMIT = 10_000
MAX_OFFSET = 2**62  # past every result; larger values overflow the database's integers
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
    condition on ``column || ''``, NULL as before): see :func:`_walk_by_study`."""
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


@dataclass
class Query:
    """A parsed QIDO-RS request."""

    level: str
    filters: list[tuple[Attr, str]]
    include: set[str]
    limit: int
    offset: int
    warnings: list[str]


def parse(level: str, params: list[tuple[str, str]], fixed: dict[str, str]) -> Query:
    """The query of ``params`` (the URL's query string) at ``level``; ``fixed`` holds the
    UIDs of the path (e.g. the study of ``/studies/{s}/series``)."""
    filters = [(ATTRS[k], v) for k, v in fixed.items()]
    include: set[str] = set()
    asked: list[str] = []  # the includefield keywords
    limit, offset, warnings = 100, 0, []
    for key, value in params:
        if key == "limit" or key == "offset":
            if not _NUMBER.fullmatch(value):  # ASCII digits only: "-1", "1e3", "²" are 400
                raise bad_value(key, value, "not a whole number")
            # Past 19 digits every value is beyond the caps (and int() of thousands of
            # digits would raise).
            number = int(value) if len(value) <= 19 else MAX_OFFSET
            if key == "limit":
                limit = min(number, MAX_LIMIT)
            else:
                offset = min(number, MAX_OFFSET)
        elif key == "includefield":
            for field in value.split(","):
                keyword = "all" if field == "all" else attribute_of(field.strip(), key, value)
                include.add(keyword)
                asked.append(keyword)
        elif key == "fuzzymatching":
            if value not in ("true", "false"):
                raise bad_value(key, value, "expected true or false")
            if value == "true":
                warnings.append(
                    '299 dicom-node "The fuzzymatching parameter is not supported. '
                    'Only literal matching has been performed."'
                )
        else:
            keyword = attribute_of(key.split(".")[0], key, value)
            attr = ATTRS.get(keyword)
            if attr is None or LEVELS.index(attr.level) > LEVELS.index(level):
                warnings.append(
                    f'299 dicom-node "{keyword} is not a supported matching key at the '
                    f'{level} level: it has been ignored."'
                )
            elif value:  # an empty value asks for the attribute, it matches anything
                condition(Instance.__table__, attr, value)  # a bad value is a 400 here
                filters.append((attr, value))
                include.add(keyword)
    returned = returned_at(level)
    warnings += [
        f'299 dicom-node "includefield {k} is not returned at the {level} level: it has '
        'been ignored."'
        for k in asked
        if k != "all" and k not in returned
    ]
    return Query(level, filters, include, limit, offset, list(dict.fromkeys(warnings)))


def returned_at(level: str) -> set[str]:
    """The keywords a search at ``level`` can return (PS3.18 lets a server leave out an
    ``includefield`` it does not support; :func:`parse` warns of each one)."""
    attrs = [*_attrs_of(level, {"all"}), *(a for a, _ in _COUNTS[level])]
    return {a.keyword for a in attrs} | {"RetrieveURL"}


def _where(
    stmt: Select, src: Any, filters: list[tuple[Attr, str]], unindexed: Attr | None = None
) -> Select:
    for attr, value in filters:
        if attr.keyword == "ModalitiesInStudy":
            stmt = stmt.where(_modalities_in_study(src, attr, value))
        else:
            stmt = stmt.where(condition(src, attr, value, indexed=attr is not unindexed))
    return stmt


def _modalities_in_study(src: Any, attr: Attr, value: str) -> ColumnElement:
    """Whether any received instance or result of ``src``'s study has one of the
    modalities: a correlated EXISTS per table, each one seek in its (study_uid, modality)
    index, so a page walked in Study UID order stops as soon as it is full (the former
    ``study_uid IN (every study with the modality)`` built that whole list first)."""
    received = Instance.__table__.alias("has_modality")
    results = RESULTS.alias("result_has_modality")
    return or_(
        *(
            select(t.c.id)
            .where(t.c.study_uid == src.c.study_uid, condition(t, attr, value))
            .exists()
            for t in (received, results)
        )
    )


def _walk_by_study(session: Any, src: Any, query: Query) -> Attr | None:
    """The date range filter whose index SQLite should not use, if any.

    SQLite has no statistics on ranges (no STAT4), so it always reads a date range
    through the study_date index, then sorts every matching row into Study UID order
    before the first result: 50 ms for a year of 10,000 studies. Walking the studies in
    Study UID order (the study_uid index) and testing the date of each row stops after
    the page instead. Decided by counting the matching rows (an index-only count): the
    date index reads and sorts ``matching`` rows, the walk reads about
    ``wanted * total / matching`` (PostgreSQL's planner has the statistics to choose)."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    ranges = [(a, v) for a, v in query.filters if a.vr == "DA" and "-" in v]
    if len(ranges) != 1:
        return None
    attr, value = ranges[0]
    matching = session.scalar(select(func.count()).where(condition(src, attr, value))) or 0
    total = session.scalar(select(func.max(src.c.id))) or 0
    wanted = query.limit + query.offset
    return attr if 2 * matching * matching > wanted * total else None


def _element(attr: Attr, value: Any) -> dict[str, Any]:
    vr = attr.vr
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        values = [_person_name(str(v)) for v in values]
    elif vr in ("IS", "US"):
        values = [int(v) for v in values]
    return {"vr": vr, "Value": values}


def _person_name(value: str) -> dict[str, str]:
    """A PN value as PS3.18 F.2.2 has it: an object of its ``=``-separated component
    groups (the index keeps the name as DICOM writes it). Trailing empty groups are left
    out, a leading empty one kept, as pydicom's JSON (the node's /metadata) has them."""
    groups = value.split("=")[:3]
    while groups and not groups[-1]:
        groups.pop()
    return dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))


def _attrs_of(level: str, include: set[str]) -> list[Attr]:
    wanted = [a for a in ATTRS.values() if a.level == level]
    if level != "study":
        above = [
            a
            for a in ATTRS.values()
            if LEVELS.index(a.level) < LEVELS.index(level) and a.keyword != "ModalitiesInStudy"
        ]
        wanted += [
            a
            for a in above
            if a.keyword in include
            or "all" in include
            or a.keyword in ("StudyInstanceUID", "SeriesInstanceUID")
        ]
    return wanted


def search(session: Any, query: Query, base_url: str) -> list[dict[str, Any]]:
    """The DICOM JSON results of ``query``."""
    attrs = _attrs_of(query.level, query.include)
    if query.level == "study":
        return _search_studies(session, query, attrs, base_url)
    src = catalogue()
    columns = [src.c[a.name].label(a.keyword) for a in attrs]
    if query.level == "instance":
        stmt = select(*columns).order_by(
            src.c.study_uid, src.c.series_uid, src.c.instance_number, src.c.sop_instance_uid
        )
    else:
        agg = [
            c if c.name == "SeriesInstanceUID" else func.min(c.element).label(c.name)
            for c in columns
        ]
        stmt = (
            select(*agg, func.count().label("instances"))
            .group_by(src.c.series_uid)
            .order_by(src.c.series_uid)
        )
    stmt = _where(stmt, src, query.filters).limit(query.limit).offset(query.offset)
    rows = session.execute(stmt).mappings().all()
    return [_result(query.level, attrs, row, base_url) for row in rows]


def _search_studies(
    session: Any, query: Query, attrs: list[Attr], base_url: str
) -> list[dict[str, Any]]:
    """Studies match on their received instances (the node's results carry their study's
    attributes), walked in Study UID order so that a page stops early; their counts and
    modalities include the results."""
    src = Instance.__table__
    columns = [src.c[a.name].label(a.keyword) for a in attrs if a.keyword != "ModalitiesInStudy"]
    agg = [
        c if c.name == "StudyInstanceUID" else func.min(c.element).label(c.name) for c in columns
    ]
    stmt = select(*agg).group_by(src.c.study_uid).order_by(src.c.study_uid)
    unindexed = _walk_by_study(session, src, query)
    stmt = _where(stmt, src, query.filters, unindexed).limit(query.limit).offset(query.offset)
    rows = [dict(r) for r in session.execute(stmt).mappings()]
    if rows:
        every = catalogue()
        page = every.c.study_uid.in_([r["StudyInstanceUID"] for r in rows])
        counts: dict[str, int] = {}
        series: dict[str, set[str]] = {}
        modalities: dict[str, set[str]] = {}
        for uid, series_uid, modality, n in session.execute(
            select(every.c.study_uid, every.c.series_uid, every.c.modality, func.count())
            .where(page)
            .group_by(every.c.study_uid, every.c.series_uid, every.c.modality)
        ):
            counts[uid] = counts.get(uid, 0) + n
            series.setdefault(uid, set()).add(series_uid)
            if modality:
                modalities.setdefault(uid, set()).add(modality)
        for r in rows:
            uid = r["StudyInstanceUID"]
            r["instances"], r["series"] = counts.get(uid, 0), len(series.get(uid, ()))
            r["ModalitiesInStudy"] = sorted(modalities.get(uid, ()))
    return [_result("study", attrs, row, base_url) for row in rows]


_COUNTS: dict[str, list[tuple[Attr, str]]] = {
    "study": [
        (Attr("NumberOfStudyRelatedSeries", "", ""), "series"),
        (Attr("NumberOfStudyRelatedInstances", "", ""), "instances"),
    ],
    "series": [(Attr("NumberOfSeriesRelatedInstances", "", ""), "instances")],
    "instance": [],
}


def _result(level: str, attrs: list[Attr], row: Any, base_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in attrs:
        out[a.tag] = _element(a, row[a.keyword])
    for attr, label in _COUNTS[level]:
        out[attr.tag] = _element(attr, row[label])
    keys = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    depth = {"study": 1, "series": 2, "instance": 3}[level]
    url = base_url + uid_path(*(row[k] for k in keys[:depth]))
    out["00081190"] = {"vr": "UR", "Value": [url]}
    return dict(sorted(out.items()))
