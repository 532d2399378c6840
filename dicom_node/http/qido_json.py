"""QIDO-RS results in DICOM JSON: the attributes a result carries at each level, and
a result row rendered with its counts and RetrieveURL.
"""

from __future__ import annotations

from typing import Any

from dicom_node.http.links import uid_path
from dicom_node.http.qido_match import ATTRS, LEVELS, Attr

COUNTS: dict[str, list[tuple[Attr, str]]] = {
    "study": [
        (Attr("NumberOfStudyRelatedSeries", "", ""), "series"),
        (Attr("NumberOfStudyRelatedInstances", "", ""), "instances"),
    ],
    "series": [(Attr("NumberOfSeriesRelatedInstances", "", ""), "instances")],
    "instance": [],
}


def returned_at(level: str) -> set[str]:
    """The keywords a search at ``level`` can return (PS3.18 lets a server leave out an
    ``includefield`` it does not support;
    :func:`dicom_node.http.qido_query.parse` warns of each one)."""
    attrs = [*attrs_of(level, {"all"}), *(a for a, _ in COUNTS[level])]
    return {a.keyword for a in attrs} | {"RetrieveURL"}


def element(attr: Attr, value: Any) -> dict[str, Any]:
    """The DICOM JSON element of ``value`` (empty: the VR alone)."""
    vr = attr.vr
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        values = [person_name(str(v)) for v in values]
    elif vr in ("IS", "US"):
        values = [int(v) for v in values]
    return {"vr": vr, "Value": values}


def person_name(value: str) -> dict[str, str]:
    """A PN value as PS3.18 F.2.2 has it: an object of its ``=``-separated component
    groups (the index keeps the name as DICOM writes it). Trailing empty groups are left
    out, a leading empty one kept, as pydicom's JSON (the node's /metadata) has them."""
    groups = value.split("=")[:3]
    while groups and not groups[-1]:
        groups.pop()
    return dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))


def attrs_of(level: str, include: set[str]) -> list[Attr]:
    """The attributes a result at ``level`` carries: its own, and the UIDs and
    ``include``d attributes of the levels above."""
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


def result(level: str, attrs: list[Attr], row: Any, base_url: str) -> dict[str, Any]:
    """One result: ``attrs`` and the counts of ``row``, and its RetrieveURL."""
    out: dict[str, Any] = {}
    for a in attrs:
        value = row[a.keyword]
        if not a.if_present or value not in (None, ""):
            out[a.tag] = element(a, value)
    for attr, label in COUNTS[level]:
        out[attr.tag] = element(attr, row[label])
    keys = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    depth = {"study": 1, "series": 2, "instance": 3}[level]
    url = base_url + uid_path(*(row[k] for k in keys[:depth]))
    out["00081190"] = {"vr": "UR", "Value": [url]}
    return dict(sorted(out.items()))
