"""STOW-RS (PS3.18 section 10.5): ``POST /dicomweb/studies[/{study}]``.

The request body is read as it arrives and each part is streamed into its own file in the
store's ``incoming/`` directory (:mod:`.multipart`); nothing holds a whole part in memory.
Once the body is complete and well-formed, each part goes through the same durable path
as a C-STORE (its checks in :mod:`.stow_check`, :class:`dicom_node.store.intake.Intake`):
header and structure checks, duplicate policy, link into place with fsync, index row,
study assembly under the web source's AE title.

A malformed body (truncated, wrong boundary) stores nothing and answers 400; a bad part
(not DICOM, Study UID other than the URL's) fails alone, listed in FailedSOPSequence,
while the request's good parts are stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from pydicom.dataset import Dataset

from dicom_node import metrics
from dicom_node.db import utcnow
from dicom_node.http import media_type
from dicom_node.http.links import uid_path
from dicom_node.http.multipart import MultipartError, MultipartReader, check_boundary
from dicom_node.http.problem import Problem
from dicom_node.http.stow_check import (  # re-exported: the part checks' old home
    CANNOT_UNDERSTAND,
    DICOM,
    DICOM_JSON,
    DOES_NOT_MATCH,
    OUT_OF_RESOURCES,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
    Checked,
    PartResult,
    check_part,
    read_file_header,
    read_file_meta,
)
from dicom_node.index.recorder import Receipt
from dicom_node.store.errors import StoreError
from dicom_node.store.intake import BATCH, STORED, Arrival, IndexFailed, Intake
from dicom_node.store.origin import STOWRS

__all__ = [
    "CANNOT_UNDERSTAND",
    "DICOM",
    "DICOM_JSON",
    "DOES_NOT_MATCH",
    "OUT_OF_RESOURCES",
    "TRANSFER_SYNTAX_NOT_SUPPORTED",
    "Checked",
    "PartResult",
    "Source",
    "SpoolPart",
    "StowBody",
    "check_part",
    "count",
    "http_status",
    "parse_content_type",
    "read_file_header",
    "read_file_meta",
    "response_dataset",
    "store_parts",
]

log = logging.getLogger(__name__)
LOGGED_FAILURES = 20  # failed parts named in a request's log line


class SpoolPart:
    """One part's body, written to a file in the store's ``incoming/`` as it arrives."""

    def __init__(
        self,
        new_file: Callable[[], tuple[Path, int]],
        content_type: str,
        limit: list[int],
        on_complete: Callable[[SpoolPart], None] | None = None,
    ) -> None:
        self.content_type = content_type
        self.size = 0
        self._limit = limit  # bytes the whole request may still add (shared by its parts)
        self._on_complete = on_complete
        self.synced: Future[None] | None = None  # its fsync, started as it ended
        # A failed create or write (disk full, I/O error) fails this part alone (0xA700):
        # its file is removed and the rest of its bytes are read and dropped.
        self.error: OSError | None = None
        self._fd = -1
        self._spooled = False  # its file is in incoming/ under self.path
        self.path = Path()
        try:
            self.path, self._fd = new_file()
            self._spooled = True
        except OSError as err:
            self.error = err

    def write(self, data: memoryview) -> None:
        self._limit[0] -= len(data)
        if self._limit[0] < 0:
            raise RequestTooLarge()
        if self.error is not None:
            return
        view = data
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as err:
            # Kept without its traceback: that would hold this frame's views of the
            # reader's buffer, which must be released before the buffer is resized.
            self.error = err.with_traceback(None)
            self.discard()
            return
        self.size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._on_complete is not None and self.error is None:
                self._on_complete(self)

    def discard(self) -> None:
        """Remove its file from ``incoming/`` (once)."""
        self._on_complete = None
        self.close()
        if self._spooled:
            self._spooled = False
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def placed(self) -> None:
        """Its file was moved into the store: nothing is left to remove."""
        self._spooled = False


class RequestTooLarge(Exception):
    """The body passed ``http.max_request_mb``."""


class TooManyParts(Exception):
    """The body has more than ``http.max_parts`` parts."""


class StowBody:
    """The parts of one STOW-RS request body, spooled to files."""

    def __init__(
        self,
        boundary: str,
        new_file: Callable[[], tuple[Path, int]],
        max_bytes: int,
        on_part_complete: Callable[[SpoolPart], None] | None = None,
        max_parts: int | None = None,
    ) -> None:
        self.new_file = new_file  # an empty spool file in incoming/: (path, fd)
        self.max_parts = max_parts
        self.on_part_complete = on_part_complete  # e.g. start its fsync while more arrives
        self.parts: list[SpoolPart] = []
        self._limit = [max_bytes]
        self.reader = MultipartReader(check_boundary(boundary), self._on_part)

    def _on_part(self, headers: Message) -> SpoolPart:
        if self.max_parts is not None and len(self.parts) >= self.max_parts:
            raise TooManyParts()
        part = SpoolPart(
            self.new_file,
            headers.get_content_type() if headers.get("Content-Type") else DICOM,
            self._limit,
            self.on_part_complete,
        )
        self.parts.append(part)
        return part

    def discard(self) -> None:
        """Remove every spooled part (a rejected request leaves nothing behind)."""
        for part in self.parts:
            part.discard()


@dataclass(frozen=True)
class Source:
    """Who sent a STOW-RS request: the web source's AE title, the token's name, the
    client's address."""

    called_ae: str
    calling_ae: str
    peer_address: str | None


def store_parts(
    intake: Intake, parts: list[SpoolPart], source: Source, study_uid: str | None
) -> list[PartResult]:
    """Store a request's spooled parts through the node's receive path (the C-STORE's
    structure check, then the intake: duplicate policy, placement with fsync, index row,
    group), :data:`~dicom_node.store.intake.BATCH` at a time
    (:meth:`~dicom_node.store.intake.Intake.keep_all`). Each part's file is placed or
    removed; never raises for bad content."""
    results: list[PartResult] = []
    for start in range(0, len(parts), BATCH):
        batch = parts[start : start + BATCH]
        try:
            results += _store_batch(intake, batch, source, study_uid)
        finally:
            for part in batch:
                part.discard()  # not stored (failed, duplicate): its file
    return results


def _store_batch(
    intake: Intake, parts: list[SpoolPart], source: Source, study_uid: str | None
) -> list[PartResult]:
    checked = [_checked(intake, part, source, study_uid) for part in parts]
    kept = iter(intake.keep_all([c for c in checked if isinstance(c, Arrival)]))
    results = []
    for part, c in zip(parts, checked, strict=True):
        if isinstance(c, PartResult):
            results.append(c)
            continue
        header = c.header
        ids = (header.sop_class_uid, header.sop_instance_uid, header.study_uid)
        outcome = next(kept)
        if isinstance(outcome, StoreError):
            log.error(
                "STOW-RS %s of study %s: %s", header.sop_instance_uid, header.study_uid, outcome
            )
            results.append(PartResult(*ids, OUT_OF_RESOURCES, "cannot write the file"))
        elif isinstance(outcome, IndexFailed):
            results.append(PartResult(*ids, OUT_OF_RESOURCES, f"index failed: {outcome}"))
        else:
            if outcome == STORED:
                part.placed()  # moved into the store: its spool name is gone
            results.append(PartResult(*ids, series_uid=header.series_uid))
    return results


def _checked(
    intake: Intake, part: SpoolPart, source: Source, study_uid: str | None
) -> Arrival | PartResult:
    """A part that passed the checks, ready for the intake; or its failure."""
    if part.error is not None:
        log.error("STOW-RS part not stored: cannot write it: %s", part.error.strerror or part.error)
        return PartResult(
            None,
            None,
            None,
            OUT_OF_RESOURCES,
            f"cannot write the part: {part.error.strerror or part.error}",
        )
    checked = check_part(part, study_uid)
    if isinstance(checked, PartResult):
        return checked
    header = checked.header
    if not intake.store.space.has_room():
        ids = (header.sop_class_uid, header.sop_instance_uid, header.study_uid)
        return PartResult(*ids, OUT_OF_RESOURCES, "disk space below the node's reserve")
    receipt = Receipt(
        called_ae=source.called_ae,
        calling_ae=source.calling_ae,
        peer_address=source.peer_address,
        transfer_syntax=checked.transfer_syntax,
        path="",
        size=0,
        received_at=utcnow(),
    )
    return Arrival(part.path, header, receipt, part.synced, STOWRS)


def response_dataset(results: list[PartResult], base_url: str, study_uid: str | None) -> Dataset:
    """The PS3.18 Store Instances Response Module for ``results``."""
    ds = Dataset()
    stored = [r for r in results if not r.failure]
    studies = {r.study_uid for r in stored}
    if study_uid or len(studies) == 1:
        ds.RetrieveURL = base_url + uid_path(study_uid or studies.pop())
    if stored:
        ds.ReferencedSOPSequence = []
        for r in stored:
            item = Dataset()
            item.ReferencedSOPClassUID = r.sop_class_uid
            item.ReferencedSOPInstanceUID = r.sop_instance_uid
            item.RetrieveURL = base_url + uid_path(r.study_uid, r.series_uid, r.sop_instance_uid)
            ds.ReferencedSOPSequence.append(item)
    failed = [r for r in results if r.failure]
    if failed:
        ds.FailedSOPSequence = []
        for r in failed:
            item = Dataset()
            if r.sop_class_uid:
                item.ReferencedSOPClassUID = r.sop_class_uid
            if r.sop_instance_uid:
                item.ReferencedSOPInstanceUID = r.sop_instance_uid
            item.FailureReason = r.failure
            ds.FailedSOPSequence.append(item)
    return ds


def http_status(results: list[PartResult]) -> int:
    """200 all stored, 202 some failed, 409 all failed (PS3.18 table 10.5.3-1)."""
    failed = sum(1 for r in results if r.failure)
    if not failed:
        return 200
    return 409 if failed == len(results) else 202


def parse_content_type(value: str | None) -> str:
    """The boundary of a STOW-RS body's Content-Type; Problem 415/400 otherwise."""
    msg = media_type.parse(value)  # one pass: email's parser is quadratic in ";"
    if msg.type != "multipart/related":
        raise Problem(
            415,
            "Unsupported Media Type",
            f'STOW-RS takes multipart/related; type="{DICOM}", not {value or "no Content-Type"}',
        )
    part_type = msg.get_param("type") or DICOM
    if part_type.lower() != DICOM:
        raise Problem(
            415,
            "Unsupported Media Type",
            f'this node stores {DICOM} parts (type="{part_type}" given)',
        )
    boundary = (msg.get_param("boundary") or "").rstrip()
    if not boundary:
        raise Problem(400, "Bad Request", "the Content-Type has no boundary parameter")
    try:
        check_boundary(boundary)
    except MultipartError as err:
        raise Problem(400, "Bad Request", str(err)) from None
    return boundary


def count(results: list[PartResult], source: str) -> None:
    """Metrics of the failed parts (stored ones are counted by the intake)."""
    for r in results:
        if r.failure:
            metrics.STORE_FAILURES.labels(f"stow_{r.failure:04x}").inc()
    failed = [r for r in results if r.failure]
    if failed:
        # The first few by name: 10,000 failed parts made a 600 kB line.
        named = "; ".join(
            f"{r.sop_instance_uid or 'part'}: 0x{r.failure:04X} {r.comment}"
            for r in failed[:LOGGED_FAILURES]
        )
        more = len(failed) - LOGGED_FAILURES
        log.warning(
            "STOW-RS to %s: %d of %d part(s) failed: %s%s",
            source,
            len(failed),
            len(results),
            named,
            f"; and {more} more" if more > 0 else "",
        )
