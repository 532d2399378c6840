"""Media types with parameters (RFC 9110 8.3.1, 12.5.1): a request's ``Content-Type``
and the ranges of its ``Accept``, parsed in one pass.

``email.message.Message.get_param`` (what the node used) rescans the header from its
start for every ``;`` inside a quoted value: quadratic, so one 60 kB header of ``;``
inside quotes took 5-9 s of CPU, on the event loop for a STOW-RS ``Content-Type``
(every other request waited). Each step here consumes at least one character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The media type: anything up to a parameter, a list separator or white space.
_TYPE = re.compile(r"\s*([^\s;,]*)\s*")
# One parameter after its ";": a name, then a quoted string (its closing quote may be
# missing: it runs to the end) or a token. The alternatives never overlap, so a match
# never backtracks.
_PARAM = re.compile(r';\s*([^\s;,=]*)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^\s;,"]*))?\s*')
_QUOTED_PAIR = re.compile(r"\\(.)")


@dataclass(frozen=True)
class MediaType:
    """A media type (``type/subtype``, lower case) and its parameters (names in lower
    case, values unquoted; the first of a name repeated wins)."""

    type: str
    params: dict[str, str] = field(default_factory=dict)

    def get_param(self, name: str) -> str | None:
        """The value of parameter ``name`` (any case), None if absent."""
        return self.params.get(name.lower())


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    inner = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
    return _QUOTED_PAIR.sub(r"\1", inner)


def _one(text: str, pos: int) -> tuple[MediaType, int]:
    """The media type at ``pos`` and where it ends (at a ``,`` or the end)."""
    found = _TYPE.match(text, pos)
    assert found is not None  # every part of the pattern may be empty
    media, pos = found.group(1).lower(), found.end()
    params: dict[str, str] = {}
    while pos < len(text) and text[pos] == ";":
        param = _PARAM.match(text, pos)
        assert param is not None  # the ";" alone matches
        name, value = param.group(1).lower(), param.group(2)
        if name and value is not None:
            params.setdefault(name, _unquote(value))
        pos = param.end()
    return MediaType(media, params), pos


def parse(value: str | None) -> MediaType:
    """The media type of a ``Content-Type`` header (``""`` when there is none)."""
    return _one(value or "", 0)[0]


def parse_list(value: str, strict: bool = False) -> list[MediaType]:
    """The media ranges of an ``Accept`` header, in order: separated by commas outside
    quoted strings; an empty element is ``*/*``; text that follows a range's
    parameters up to the next comma is ignored. ``strict`` (the ``accept`` query
    parameter): an empty element is skipped, and ValueError names an element with
    text after its parameters."""
    ranges = []
    pos = 0
    while True:
        start = pos
        media, pos = _one(value, pos)
        comma = value.find(",", pos)
        end = len(value) if comma < 0 else comma
        if strict and value[pos:end].strip():
            raise ValueError(value[start:end].strip())
        if value[start:pos].strip():
            ranges.append(media)
        elif not strict:
            ranges.append(MediaType("*/*"))
        if comma < 0:
            return ranges
        pos = comma + 1
