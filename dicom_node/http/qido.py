"""QIDO-RS (PS3.18 section 10.6): study, series and instance searches over the index.

Everything answered comes from the ``instances`` table (never from files): the matching
keys (:mod:`dicom_node.http.qido_match`) are its columns, studies and series are
aggregates of their instances. The request is parsed by :mod:`dicom_node.http.qido_query`;
this module builds and runs the SQL (``limit``/``offset`` page the result, ``includefield``
adds the study's attributes to series and instance results); :mod:`dicom_node.http.qido_json`
renders the rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select

from dicom_node.http.qido_json import attrs_of, result
from dicom_node.http.qido_match import Attr, condition
from dicom_node.http.qido_query import Query
from dicom_node.http.results import RESULTS, catalogue
from dicom_node.index.tables import Instance


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


def search(session: Any, query: Query, base_url: str) -> list[dict[str, Any]]:
    """The DICOM JSON results of ``query``."""
    attrs = attrs_of(query.level, query.include)
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
    return [result(query.level, attrs, row, base_url) for row in rows]


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
    return [result("study", attrs, row, base_url) for row in rows]
