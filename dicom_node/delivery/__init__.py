"""Delivery of result files to destinations: DIMSE C-STORE, STOW-RS, Orthanc REST.

``deliver(destination, files)`` makes one attempt and returns a
:class:`~dicom_node.delivery.report.DeliveryReport`; it never raises for a delivery
fault (bad peer, network, unreadable file): those are outcomes, classified transient or
permanent. ``retry`` holds the backoff policy the job layer applies between attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from dicom_node.delivery.dimse import DimseDeliverer
from dicom_node.delivery.orthanc import OrthancDeliverer
from dicom_node.delivery.report import DeliveryReport, InstanceOutcome, OnOutcomes, Outcome
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
    (C-STORE, Orthanc REST: one instance; STOW-RS: one request's instances).
    """
    return deliverer_for(destination).deliver(
        files, priority=priority, label=label, on_outcomes=on_outcomes
    )
