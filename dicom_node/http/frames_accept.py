"""Which media type and transfer syntax WADO-RS frames are sent in (PS3.18 8.7.3), and
the frame list of a ``.../frames/{list}`` path.

Frames are sent as stored: native (uncompressed) frames as ``application/octet-stream``
with Explicit VR Little Endian, encapsulated frames as their compressed bitstream with
the media type of the stored transfer syntax (PS3.18 table 8.7.3-2). Encapsulated
frames a decoder in this environment handles are also sent decoded, as
``application/octet-stream`` in Explicit VR Little Endian (:mod:`.frames_decode`), to a
client that asks for that and not for them as stored. An Accept that takes neither
answers 406 naming those available.
"""

from __future__ import annotations

import re

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicom_node.http.problem import Problem
from dicom_node.http.wado_accept import Ranges, flat

OCTET = "application/octet-stream"

# Media type of each encapsulated transfer syntax (PS3.18 table 8.7.3-2).
ENCAPSULATED_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.110": "image/jxl",
    "1.2.840.10008.1.2.4.111": "image/jxl",
    "1.2.840.10008.1.2.4.112": "image/jxl",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
# The transfer syntax a media type means when the Accept names none (PS3.18 8.7.3).
DEFAULT_SYNTAX = {
    OCTET: ExplicitVRLittleEndian,
    "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jxl": "1.2.840.10008.1.2.4.110",
    "image/jphc": "1.2.840.10008.1.2.4.201",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
}
ENCAPSULATED_UNCOMPRESSED = "1.2.840.10008.1.2.1.98"
NATIVE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
NO_TRANSCODING = "this node sends frames as stored and does not transcode"
NO_ENCODING = "this node sends frames as stored, or decoded, and does not compress them"


def parse_frame_list(text: str) -> list[int]:
    """The 1-based frame numbers of a ``{frames}`` path segment; Problem 400 naming the
    first bad one, or the first repeated one (PS3.18 asks for non-duplicate numbers: so a
    list never asks for more than the instance's frames)."""
    numbers: list[int] = []
    seen: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not re.fullmatch(r"[0-9]{1,9}", item) or int(item) == 0:
            raise Problem(
                400,
                "Bad Request",
                f"frame {item!r} is not a frame number: frames are a comma-separated "
                "list of numbers from 1",
                frame=item,
            )
        if int(item) in seen:
            raise Problem(
                400,
                "Bad Request",
                f"frame {int(item)} is asked for more than once: frames are a list of "
                "non-duplicate frame numbers",
                frame=str(int(item)),
            )
        seen.add(int(item))
        numbers.append(int(item))
    return numbers


def served_as(stored_ts: str) -> tuple[str, str]:
    """(media type, transfer syntax) in which frames of ``stored_ts`` are sent;
    Problem 406 for a syntax whose frames this node cannot send as stored."""
    if stored_ts in NATIVE or stored_ts == ENCAPSULATED_UNCOMPRESSED:
        return OCTET, ExplicitVRLittleEndian
    if stored_ts in ENCAPSULATED_MEDIA:
        return ENCAPSULATED_MEDIA[stored_ts], stored_ts
    raise Problem(
        406,
        "Not Acceptable",
        f"the instance is stored as {stored_ts}, whose frames this node cannot send: "
        + NO_TRANSCODING,
    )


def negotiate(
    acceptable: list[Ranges], stored_ts: str, decodable: bool = False
) -> tuple[str, str, bool]:
    """The (media type, transfer syntax) of the parts, and whether the frames are sent
    decoded; Problem 406 if the client accepts neither. Each range of ``acceptable``
    (:func:`.wado_accept.requested`) is tried in order; frames are sent as stored where
    a range allows it. ``application/octet-stream`` with ``transfer-syntax=*`` (or the
    stored syntax) takes compressed frames too,
    labelled with their syntax: what OHIF's image loader asks for by default. With
    ``decodable`` (an encapsulated syntax a decoder here handles),
    ``application/octet-stream`` without a syntax, or with Explicit VR Little Endian,
    takes the frames decoded (PS3.18 8.7.3: its default syntax)."""
    media, ts = served_as(stored_ts)
    for rng, msg in flat(acceptable):
        if rng in ("*/*", "multipart/*"):
            return media, ts, False
        if rng != "multipart/related":
            continue
        wanted = str(msg.get_param("type") or OCTET).lower()
        asked = msg.get_param("transfer-syntax")
        if wanted == "*/*" or (wanted.endswith("/*") and media.startswith(wanted[:-1])):
            if asked in (None, "*", ts):
                return media, ts, False
        elif wanted == media and (asked or DEFAULT_SYNTAX[media]) in ("*", ts):
            return media, ts, False
        elif wanted == OCTET and asked in ("*", ts):
            return OCTET, ts, False
        elif (
            decodable
            and wanted == OCTET
            and (asked or ExplicitVRLittleEndian) == (ExplicitVRLittleEndian)
        ):
            return OCTET, ExplicitVRLittleEndian, True
    offered = [ts, ExplicitVRLittleEndian] if decodable else [ts]
    also = (
        f', or decoded as multipart/related; type="{OCTET}"; '
        f"transfer-syntax={ExplicitVRLittleEndian}"
        if decodable
        else ""
    )
    raise Problem(
        406,
        "Not Acceptable",
        f'frames of this instance are multipart/related; type="{media}"; '
        f"transfer-syntax={ts}{also}: {NO_ENCODING if decodable else NO_TRANSCODING} "
        "(ask with transfer-syntax=* for them as stored)",
        available=offered,
    )
