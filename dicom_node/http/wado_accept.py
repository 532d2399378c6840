"""What a WADO-RS client accepts (PS3.18 8.7): the media ranges of its Accept header,
DICOM JSON for metadata, and the transfer syntaxes of a retrieve of instances. Frames:
:mod:`.frames_accept`; renderings: :mod:`.render`.
"""

from __future__ import annotations

from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.http import media_type
from dicom_node.http.media_type import MediaType
from dicom_node.http.problem import Problem

DICOM = "application/dicom"
JSON_MEDIA = ("application/dicom+json", "application/json", "application/*", "*/*")


def check_json_accept(accept: str | None) -> None:
    """Problem 406 unless the client accepts DICOM JSON."""
    if not any(media in JSON_MEDIA for media, _ in media_ranges(accept)):
        raise Problem(
            406, "Not Acceptable", "this resource is application/dicom+json (or application/json)"
        )


def media_ranges(accept: str | None) -> list[tuple[str, MediaType]]:
    """The media ranges of an Accept header (none: ``*/*``), each as its media type and
    the parsed range (whose parameters ``get_param`` reads), in one pass
    (:mod:`.media_type`)."""
    return [(r.type, r) for r in media_type.parse_list(accept or "*/*")]


def accepted_syntaxes(accept: str | None) -> set[str] | None:
    """The transfer syntaxes a retrieve may use (None: any); Problem 406 if the client
    accepts no ``multipart/related; type="application/dicom"``."""
    syntaxes: set[str] = set()
    for media, msg in media_ranges(accept):
        if media in ("*/*", "multipart/*") or (
            media == "multipart/related" and (msg.get_param("type") or DICOM) == DICOM
        ):
            ts = msg.get_param("transfer-syntax")
            if ts == "*" or media != "multipart/related":
                return None
            syntaxes.add(str(ts or ExplicitVRLittleEndian))
    if not syntaxes:
        raise Problem(
            406,
            "Not Acceptable",
            f'this node retrieves instances as multipart/related; type="{DICOM}"',
        )
    return syntaxes
