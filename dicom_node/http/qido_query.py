"""QIDO-RS query strings (PS3.18 section 10.6) parsed into a :class:`Query`: matching
keys checked against their values, ``limit``/``offset``, ``includefield``,
``fuzzymatching``, and a Warning 299 for each key or field the node ignores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dicom_node.http.qido_json import returned_at
from dicom_node.http.qido_match import ATTRS, LEVELS, Attr, attribute_of, bad_value, condition
from dicom_node.index.tables import Instance

_NUMBER = re.compile(r"[0-9]+")
MAX_LIMIT = 10_000
MAX_OFFSET = 2**62  # past every result; larger values overflow the database's integers


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
        elif key == "accept":
            continue  # content negotiation (PS3.18 8.3.3.1): dicom_node.http.wado_accept
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
