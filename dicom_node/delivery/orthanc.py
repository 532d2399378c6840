"""Delivery into Orthanc through its REST API: ``POST {url}/instances`` per file.

Orthanc answers ``{"Status": "Success" | "AlreadyStored", "ID": ...}``; both mean the
instance is there (Orthanc keeps one instance per SOP Instance UID, so a re-send after a
partial failure never duplicates). Connection errors and timeouts are transient; after
one, the remaining files of the batch are not tried (they are marked transient too).
Answers are read with bounds (:func:`dicom_node.delivery.http.post`): no redirects
followed (a 3xx is permanent), at most 1 MiB of body, all of it within the timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from dicom_node.delivery.http import classify_http_status, http_error_text, make_session, post
from dicom_node.delivery.report import (
    DeliveryReport,
    InstanceOutcome,
    OnOutcomes,
    read_send_items,
)
from dicom_node.settings.destinations import OrthancDestination

__all__ = ["OrthancDeliverer"]

log = logging.getLogger(__name__)


class OrthancDeliverer:
    """Sends files to one Orthanc server's REST API."""

    def __init__(self, destination: OrthancDestination) -> None:
        self.destination = destination

    def deliver(
        self,
        files: Sequence[Path | str],
        priority: str = "routine",
        label: str = "",
        on_outcomes: OnOutcomes | None = None,
    ) -> DeliveryReport:
        """POST each file to ``/instances``; never raises for delivery faults."""
        d = self.destination
        report = DeliveryReport(
            d.name, "orthanc", dt.datetime.now(dt.UTC), label=label, on_outcomes=on_outcomes
        )
        items, bad = read_send_items([Path(f) for f in files])
        report.add(*bad)
        already = 0
        with make_session(d.auth) as session:
            for n, item in enumerate(items):
                path, uid = str(item.path), item.sop_instance_uid
                t0 = time.monotonic()
                try:
                    data = item.path.read_bytes()
                    answer = post(
                        session,
                        f"{d.url}/instances",
                        data,
                        {"Content-Type": "application/dicom", "Accept": "application/json"},
                        d.timeout,
                    )
                except OSError as exc:
                    if not isinstance(exc, requests.RequestException):
                        report.add(
                            InstanceOutcome(
                                path, uid, "permanent", error=f"cannot read {path}: {exc}"
                            )
                        )
                        continue
                    kind = "timeout" if isinstance(exc, requests.Timeout) else "connection_failed"
                    report.error_kind = kind
                    report.error = f"cannot reach Orthanc at {d.url}: {exc}"
                    report.add(
                        *(
                            InstanceOutcome(
                                str(i.path), i.sop_instance_uid, "transient", error=report.error
                            )
                            for i in items[n:]
                        )
                    )
                    break
                elapsed = time.monotonic() - t0
                outcome = classify_http_status(answer.status)
                error = None
                if outcome == "delivered":
                    already += _json_status(answer.body) == "AlreadyStored"
                else:
                    error = http_error_text(answer, f"{d.url}/instances")
                report.add(
                    InstanceOutcome(
                        path, uid, outcome, code=answer.status, error=error, elapsed_s=elapsed
                    )
                )
        report.detail["already_stored"] = already
        return report.finish()


def _json_status(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's reach
        return ""
    if isinstance(body, dict):
        return str(body.get("Status", ""))
    return ""
