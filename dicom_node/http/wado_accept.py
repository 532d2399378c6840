"""What a DICOMweb client accepts (PS3.18 8.7.5): the media types of the ``accept`` query
parameter (8.3.3.1), then the media ranges of the Accept header, each list in the order
of its q-values (8.7.8.1); DICOM JSON for metadata and searches, the transfer syntaxes
of a retrieve of instances, bulk data. Frames: :mod:`.frames_accept`; renderings:
:mod:`.render`. Every negotiator tries the parameter's types before the header's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydicom.uid import ExplicitVRLittleEndian
from starlette.requests import Request

from dicom_node.http import media_type
from dicom_node.http.media_type import MediaType
from dicom_node.http.problem import Problem

DICOM = "application/dicom"
JSON_MEDIA = ("application/dicom+json", "application/json", "application/*", "*/*")
OCTET = "application/octet-stream"
# One list of (media type, parsed range) per source: the parameter's, the header's.
Ranges = list[tuple[str, MediaType]]
_TOKEN = r"[!#$%&'*+.^_`|~0-9a-z-]+"  # RFC 9110 5.6.2 (media types are lower-cased)
_MEDIA = re.compile(f"{_TOKEN}/{_TOKEN}")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")  # RFC 9110 12.4.2
# DICOM media types (8.7.3.5), as parts of a multipart/related too, and JSON.
_DICOM_FAMILY = (DICOM, "application/dicom+json", "application/dicom+xml", "application/json")
USAGE = (
    "accept is a comma-separated list of media types, each type/subtype with optional "
    "parameters and weight (q=0 to 1), no wildcards, not both DICOM and rendered types "
    "(PS3.18 8.3.3.1; a + in a query is a space: write it %2B)"
)


def _weight(rng: MediaType) -> float | None:
    """The range's q-value (1 without one); None if it is not a qvalue."""
    q = rng.get_param("q")
    if q is None:
        return 1.0
    return float(q) if _QVALUE.fullmatch(q) else None


def _by_weight(ranges: list[MediaType]) -> Ranges:
    """``ranges`` with a weight above 0, the highest first (a tie: in order)."""
    weighted = [(w, r) for r in ranges if (w := _weight(r))]
    return [(r.type, r) for w, r in sorted(weighted, key=lambda x: -x[0])]


def media_ranges(accept: str | None) -> Ranges:
    """The media ranges of an Accept header (none: ``*/*``) by weight, q=0 and a bad
    q-value left out (8.7.7: what is not valid is ignored), each as its media type and
    the parsed range (whose parameters ``get_param`` reads), in one pass
    (:mod:`.media_type`)."""
    return _by_weight(media_type.parse_list(accept or "*/*"))


def _is_dicom(rng: MediaType) -> bool:
    """Whether ``rng`` is a DICOM (or bulk data) media type: a multipart/related one,
    DICOM, DICOM JSON or XML, octet-stream (8.7.3); else a rendered one (8.7.4)."""
    return rng.type.startswith("multipart/") or rng.type in (*_DICOM_FAMILY, OCTET)


def query_ranges(values: Sequence[str]) -> Ranges:
    """The media types of the ``accept`` query parameter (each of ``values`` a list of
    them) by weight; Problem 400 naming the parameter for a malformed one, a wildcard,
    none at all, or DICOM and rendered types together (8.3.3.1)."""
    found: list[MediaType] = []
    for value in values:
        try:
            ranges = media_type.parse_list(value, strict=True)
        except ValueError as err:
            raise _bad(str(err)) from None
        for rng in ranges:
            if not _MEDIA.fullmatch(rng.type) or "*" in rng.type.split("/"):
                raise _bad(rng.type)
            if _weight(rng) is None:
                raise _bad(f"{rng.type};q={rng.get_param('q')}")
        found += ranges
    if not found:
        raise _bad(",".join(values))
    if len({_is_dicom(r) for r in found}) > 1:
        raise _bad(", ".join(r.type for r in found))
    return _by_weight(found)


def _bad(value: str) -> Problem:
    return Problem(400, "Bad Request", f"accept {value[:64]!r}: {USAGE}", parameter="accept")


def requested(request: Request) -> list[Ranges]:
    """The Acceptable Media Types of ``request`` (8.7.5): the ``accept`` query
    parameter's (if given, validated), then the Accept header's."""
    values = request.query_params.getlist("accept")
    header = media_ranges(request.headers.get("accept"))
    return [query_ranges(values), header] if values else [header]


def flat(acceptable: list[Ranges]) -> Ranges:
    """The ranges of every source, the parameter's first: for a negotiator that takes
    the first range it can answer."""
    return [rng for ranges in acceptable for rng in ranges]


def check_json_accept(acceptable: list[Ranges]) -> None:
    """Problem 406 unless the client accepts DICOM JSON in UTF-8 (the only charset the
    node writes; another ``charset`` parameter is a type it does not support)."""
    for media, rng in flat(acceptable):
        if media in JSON_MEDIA and (rng.get_param("charset") or "utf-8").lower() == "utf-8":
            return
    raise Problem(
        406,
        "Not Acceptable",
        "this resource is application/dicom+json (or application/json), in UTF-8",
    )


def check_bulk_accept(acceptable: list[Ranges]) -> None:
    """Problem 406 unless the client accepts a multipart/related answer (bulk data is
    one ``application/octet-stream`` part; the part type asked is not checked: OHIF asks
    for a video's or a PDF's bulk data by their own media types, and reads the bytes) or
    ``application/octet-stream``."""
    for media, _ in flat(acceptable):
        if media in ("*/*", "multipart/*", "multipart/related", "application/*", OCTET):
            return
    raise Problem(
        406, "Not Acceptable", f'bulk data is multipart/related; type="{OCTET}" (one part)'
    )


def _syntaxes(ranges: Ranges) -> set[str] | None:
    """The transfer syntaxes of ``ranges`` (an empty set: none; None: any)."""
    syntaxes: set[str] = set()
    for media, msg in ranges:
        if media in ("*/*", "multipart/*") or (
            media == "multipart/related" and (msg.get_param("type") or DICOM) == DICOM
        ):
            ts = msg.get_param("transfer-syntax")
            if ts == "*" or media != "multipart/related":
                return None
            syntaxes.add(str(ts or ExplicitVRLittleEndian))
    return syntaxes


def accepted_syntaxes(acceptable: list[Ranges]) -> set[str] | None:
    """The transfer syntaxes a retrieve may use (None: any), from the first source that
    accepts ``multipart/related; type="application/dicom"``; Problem 406 if none does."""
    for ranges in acceptable:
        syntaxes = _syntaxes(ranges)
        if syntaxes is None or syntaxes:
            return syntaxes
    raise Problem(
        406,
        "Not Acceptable",
        f'this node retrieves instances as multipart/related; type="{DICOM}"',
    )
