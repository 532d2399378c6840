"""What one delivery attempt produced: per-instance outcomes and an overall verdict.

The job layer records one attempt per :class:`DeliveryReport` (per job and destination),
and each outcome as the deliverer adds it (``on_outcomes``).
``status`` says what to do next: ``delivered`` (done), ``transient`` (retry the
``undelivered_paths`` later, with backoff) or ``permanent`` (retrying will not help; the
job fails and is listed).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

__all__ = [
    "DeliveryReport",
    "InstanceOutcome",
    "OnOutcomes",
    "Outcome",
    "SendItem",
    "read_send_items",
]

log = logging.getLogger("dicom_node.delivery")

Outcome = Literal["delivered", "transient", "permanent"]


@dataclass(frozen=True)
class InstanceOutcome:
    """The fate of one file in one attempt.

    ``code`` is the DIMSE status (C-STORE), the HTTP status (Orthanc REST) or the
    STOW-RS Failure Reason / HTTP status; ``None`` when nothing was answered.
    ``warning`` is set for delivered-with-warning statuses (e.g. 0xB000).
    """

    path: str
    sop_instance_uid: str
    outcome: Outcome
    code: int | None = None
    warning: bool = False
    error: str | None = None
    elapsed_s: float = 0.0


#: Called with each response as it arrives (one instance for C-STORE and Orthanc REST, a
#: whole request's instances for STOW-RS), before the next file is sent: the job layer
#: commits them there, so a crash loses at most the response in flight.
OnOutcomes = Callable[[Sequence[InstanceOutcome]], None]


@dataclass
class DeliveryReport:
    """One attempt to deliver a batch of files to one destination.

    Deliverers add outcomes with :meth:`add`, which hands them to ``on_outcomes``.
    """

    destination: str
    kind: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    outcomes: list[InstanceOutcome] = field(default_factory=list)
    error: str | None = None  # attempt-level error, e.g. "association rejected: ..."
    error_kind: str | None = None  # e.g. connection_failed, association_rejected, http_503
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. proposed/accepted contexts
    label: str = ""  # the caller's context for logs, e.g. "job 42 study 1.2.3"
    on_outcomes: OnOutcomes | None = field(default=None, repr=False, compare=False)

    def add(self, *outcomes: InstanceOutcome) -> None:
        """Append outcomes as they arrive and pass them on to ``on_outcomes``.

        An exception from ``on_outcomes`` (the record cannot be written) propagates:
        the deliverer stops sending rather than send what it cannot record.
        """
        if not outcomes:
            return
        self.outcomes.extend(outcomes)
        if self.on_outcomes is not None:
            self.on_outcomes(outcomes)

    @property
    def duration_s(self) -> float:
        """Wall time of the attempt in seconds."""
        end = self.finished_at or dt.datetime.now(dt.UTC)
        return (end - self.started_at).total_seconds()

    @property
    def delivered(self) -> list[InstanceOutcome]:
        """Outcomes that were accepted (warnings included)."""
        return [o for o in self.outcomes if o.outcome == "delivered"]

    @property
    def failed(self) -> list[InstanceOutcome]:
        """Outcomes that were not accepted."""
        return [o for o in self.outcomes if o.outcome != "delivered"]

    @property
    def undelivered_paths(self) -> list[str]:
        """Files to send again on the next attempt."""
        return [o.path for o in self.failed]

    @property
    def ok(self) -> bool:
        """True when every file was delivered."""
        return not self.failed and self.error is None

    @property
    def status(self) -> Outcome:
        """``delivered`` if all went, else ``transient`` if any failure is transient,
        else ``permanent``."""
        if self.ok:
            return "delivered"
        if any(o.outcome == "transient" for o in self.failed):
            return "transient"
        if not self.outcomes and self.error is not None:
            return "transient" if self.error_kind in _TRANSIENT_KINDS else "permanent"
        return "permanent"

    def summary(self) -> str:
        """One line for logs and the jobs table."""
        prefix = f"[{self.label}] " if self.label else ""
        text = (
            f"{prefix}{self.destination} ({self.kind}): "
            f"{len(self.delivered)}/{len(self.outcomes)} "
            f"delivered in {self.duration_s:.2f}s, {self.status}"
        )
        if self.error:
            text += f"; {self.error}"
        else:
            first = next((o for o in self.failed), None)
            if first is not None:
                text += f"; first failure {first.sop_instance_uid}: {first.error}"
        return text

    def finish(self) -> DeliveryReport:
        """Stamp the end time, log the summary (WARNING unless all went) and return self."""
        self.finished_at = dt.datetime.now(dt.UTC)
        log.log(logging.INFO if self.ok else logging.WARNING, "delivery %s", self.summary())
        return self


_TRANSIENT_KINDS = {"connection_failed", "association_rejected", "association_aborted", "timeout"}


@dataclass(frozen=True)
class SendItem:
    """A file to send, with what its header says."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def read_send_items(
    paths: list[Path] | tuple[Path, ...],
) -> tuple[list[SendItem], list[InstanceOutcome]]:
    """Read the header of each file; unreadable ones become permanent outcomes."""
    items: list[SendItem] = []
    bad: list[InstanceOutcome] = []
    for p in paths:
        path = Path(p)
        try:
            ds = dcmread(
                path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"]
            )
            meta = ds.file_meta
            # The dataset's own UIDs are what C-STORE sends; the file meta is the fallback.
            sop_class = str(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
            sop_uid = str(ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or "")
            ts = str(meta.get("TransferSyntaxUID") or "")
            missing = [
                n
                for n, v in (
                    ("SOP Class UID", sop_class),
                    ("SOP Instance UID", sop_uid),
                    ("Transfer Syntax UID", ts),
                )
                if not v
            ]
            if missing:
                raise ValueError("missing " + ", ".join(missing))
        except (InvalidDicomError, OSError, ValueError, AttributeError, EOFError) as exc:
            bad.append(
                InstanceOutcome(str(path), "", "permanent", error=f"cannot read {path}: {exc}")
            )
            continue
        items.append(SendItem(path, sop_class, sop_uid, ts))
    return items, bad
