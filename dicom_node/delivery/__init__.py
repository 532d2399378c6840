"""Delivery of result files to destinations: DIMSE C-STORE, STOW-RS, Orthanc REST.

``deliver(destination, files)`` makes one attempt and returns a
:class:`~dicom_node.delivery.report.DeliveryReport`; it never raises for a delivery
fault (bad peer, network, unreadable file): those are outcomes, classified transient or
permanent. Nor for an exception a sender did not expect (a bug, an odd library error):
the files it had not answered for get a permanent outcome naming the exception (never
retried: the same code would raise it again), its traceback is logged at DEBUG. Only
an exception from ``on_outcomes`` (the record cannot be written) propagates.
``retry`` holds the backoff policy the job layer applies between attempts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from dicom_node.delivery.dimse import DimseDeliverer
from dicom_node.delivery.orthanc import OrthancDeliverer
from dicom_node.delivery.report import (
    DeliveryReport,
    InstanceOutcome,
    OnOutcomes,
    Outcome,
    read_send_items,
)
from dicom_node.delivery.retry import RetryPolicy
from dicom_node.delivery.stowrs import StowRsDeliverer
from dicom_node.settings.destinations import (
    DimseDestination,
    OrthancDestination,
    StowRsDestination,
)

__all__ = [
    "Deliverer",
    "DeliveryReport",
    "InstanceOutcome",
    "OnOutcomes",
    "Outcome",
    "RetryPolicy",
    "deliver",
    "deliverer_for",
]

log = logging.getLogger(__name__)


class Deliverer(Protocol):
    """Sends a batch of DICOM Part 10 files to one destination, one attempt per call."""

    def deliver(
        self,
        files: Sequence[Path | str],
        priority: str = "routine",
        label: str = "",
        on_outcomes: OnOutcomes | None = None,
    ) -> DeliveryReport: ...


def deliverer_for(
    destination: DimseDestination | StowRsDestination | OrthancDestination,
) -> Deliverer:
    """The deliverer for a configured destination."""
    if isinstance(destination, DimseDestination):
        return DimseDeliverer(destination)
    if isinstance(destination, StowRsDestination):
        return StowRsDeliverer(destination)
    if isinstance(destination, OrthancDestination):
        return OrthancDeliverer(destination)
    raise TypeError(f"unknown destination type {type(destination).__name__}")


def deliver(
    destination: DimseDestination | StowRsDestination | OrthancDestination,
    files: Sequence[Path | str],
    priority: str = "routine",
    label: str = "",
    on_outcomes: OnOutcomes | None = None,
) -> DeliveryReport:
    """One delivery attempt of ``files`` to ``destination`` (see the module docstring).

    ``priority`` is the route's (``stat``/``routine``); ``label`` names the caller's
    context (e.g. ``"job 42 study 1.2.3"``) in log lines and ``report.summary()``.
    ``on_outcomes`` gets each response as it arrives, before the next file is sent
    (C-STORE, Orthanc REST: one instance; STOW-RS: one request's instances); an
    exception from it propagates, any other one becomes permanent outcomes.
    """
    answered: list[InstanceOutcome] = []  # on record
    unrecorded: list[BaseException] = []

    def record(outcomes: Sequence[InstanceOutcome]) -> None:
        try:
            if on_outcomes is not None:
                on_outcomes(outcomes)
        except BaseException as exc:
            unrecorded.append(exc)
            raise
        answered.extend(outcomes)

    started = dt.datetime.now(dt.UTC)
    try:
        return deliverer_for(destination).deliver(
            files, priority=priority, label=label, on_outcomes=record
        )
    except Exception as exc:
        if unrecorded:  # stop rather than go on without a record
            raise
        log.debug("[%s] delivery to %s raised", label, destination.name, exc_info=True)
        report = DeliveryReport(
            destination.name, destination.kind, started, label=label, on_outcomes=record
        )
        report.error_kind = "internal_error"
        report.error = (
            f"internal error delivering to {destination.name}: "
            f"{type(exc).__name__}: {str(exc)[:500]}"
        )
        report.outcomes.extend(answered)  # so that the attempt counts them
        done = {o.path for o in answered}
        items, bad = read_send_items([Path(f) for f in files if str(Path(f)) not in done])
        report.add(*bad)
        report.add(
            *(
                InstanceOutcome(str(i.path), i.sop_instance_uid, "permanent", error=report.error)
                for i in items
            )
        )
        return report.finish()
