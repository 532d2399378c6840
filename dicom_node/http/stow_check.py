"""The read-only checks of one STOW-RS part, before it is stored (:mod:`.stow`).

A part must be ``application/dicom``, a PS3.10 file whose File Meta the receive path's
structure walk reads, whose dataset the same walk accepts (:mod:`dicom_node.store.check`),
with the identifying UIDs the index needs and, under ``/studies/{study}``, that study. A
part that fails answers its PS3.18 Failure Reason (the DIMSE C-STORE statuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.index.header import (
    HEADER_TAGS,
    HeaderError,
    InstanceHeader,
    header_from_elements,
    parse_file_header,
)
from dicom_node.network import spool
from dicom_node.store.check import (
    PixelDataMismatch,
    StructureError,
    check_dataset,
    check_file,
)

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
# PS3.18 table 10.5.3-2 Failure Reasons (the DIMSE C-STORE statuses).
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900  # also: a Study Instance UID other than the URL's
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122


class Part(Protocol):
    """A spooled part as the checks see it (:class:`.stow.SpoolPart`)."""

    path: Path
    content_type: str


@dataclass(frozen=True)
class PartResult:
    """The outcome of one part: stored (``failure`` 0) or the Failure Reason."""

    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_uid: str | None
    failure: int = 0
    comment: str = ""
    series_uid: str = ""  # known once stored: the instance's RetrieveURL needs it


_META_SOP, _META_TS = 0x00020003, 0x00020010


def read_file_meta(path: Path | str) -> tuple[str, str]:
    """The transfer syntax and Media Storage SOP Instance UID of a PS3.10 file's File
    Meta (walked by the receive path's structure check); HeaderError if it is not a
    PS3.10 file."""
    with open(path, "rb") as fh:
        head = fh.read(144)
        try:
            end = spool.dataset_offset(head)
        except ValueError as err:
            raise HeaderError(f"not a DICOM PS3.10 file ({err})") from err
        meta = head[132:] + fh.read(end - 144)
    try:
        if len(meta) != end - 132:
            raise StructureError("the file ends inside its File Meta")
        found = check_dataset(meta, ExplicitVRLittleEndian, 0, frozenset((_META_SOP, _META_TS)))
    except StructureError as err:
        raise HeaderError(f"unreadable File Meta Information: {err}") from err
    values = {
        tag: raw.decode("ascii", "replace").rstrip(" \0") for tag, (_, raw) in (found or {}).items()
    }
    ts = values.get(_META_TS, "")
    if not ts:
        raise HeaderError("File Meta lacks the Transfer Syntax UID")
    return ts, values.get(_META_SOP, "")


def _dataset_header(path: Path | str, ts: str, meta_sop: str) -> InstanceHeader:
    """The header of the dataset after the File Meta (pydicom's parse)."""
    header = parse_file_header(path, ts)
    if meta_sop and meta_sop != header.sop_instance_uid:
        raise HeaderError("File Meta and dataset SOP Instance UIDs differ")
    return header


def read_file_header(path: Path | str) -> tuple[InstanceHeader, str]:
    """The header and transfer syntax of a PS3.10 file; HeaderError if it is not one."""
    ts, meta_sop = read_file_meta(path)
    return _dataset_header(path, ts, meta_sop), ts


@dataclass(frozen=True)
class Checked:
    """A part that passed the checks: its header and transfer syntax."""

    header: InstanceHeader
    transfer_syntax: str


def check_part(part: Part, study_uid: str | None) -> Checked | PartResult:
    """The read-only checks of one spooled part (media type, header, the URL's study,
    structure): its header, or the failure. As on the C-STORE path, one walk of the
    file checks its structure and picks up the indexed elements; pydicom parses the
    header only of a file the walk refuses (for the failure's identifiers) or does not
    walk (deflated)."""
    if part.content_type != DICOM:
        return PartResult(
            None,
            None,
            None,
            TRANSFER_SYNTAX_NOT_SUPPORTED,
            f"part media type {part.content_type} is not {DICOM}",
        )
    malformed: StructureError | PixelDataMismatch | None = None
    try:
        ts, meta_sop = read_file_meta(part.path)
        try:
            elements = check_file(part.path, ts, HEADER_TAGS)
        except (StructureError, PixelDataMismatch) as err:
            malformed, elements = err, None
        if elements is None:
            header = _dataset_header(part.path, ts, meta_sop)
        else:
            header = header_from_elements(elements, ts)
            if meta_sop and meta_sop != header.sop_instance_uid:
                raise HeaderError("File Meta and dataset SOP Instance UIDs differ")
    except HeaderError as err:
        return PartResult(None, None, None, CANNOT_UNDERSTAND, str(err))
    ids = (header.sop_class_uid, header.sop_instance_uid, header.study_uid)
    if study_uid is not None and header.study_uid != study_uid:
        return PartResult(
            *ids, DOES_NOT_MATCH, f"Study Instance UID {header.study_uid} is not the URL's"
        )
    if isinstance(malformed, StructureError):
        return PartResult(*ids, CANNOT_UNDERSTAND, f"malformed: {malformed}")
    if isinstance(malformed, PixelDataMismatch):
        return PartResult(*ids, DOES_NOT_MATCH, str(malformed))
    return Checked(header, ts)
