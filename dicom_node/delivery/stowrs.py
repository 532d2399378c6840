"""Delivery to a DICOMweb server with STOW-RS, through dicomweb-client.

Files go in batches (one multipart request per batch). The STOW-RS response names each
instance in Referenced SOP Sequence (stored; a Warning Reason makes it a warning) or in
Failed SOP Sequence (with a Failure Reason, classified like a C-STORE status). HTTP
errors: 408/429/5xx and connection errors are transient, other 4xx permanent; a 409
(some failed) is parsed like a success response. dicomweb-client's own retrying is
switched off: the job layer owns retries.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.delivery.dimse import classify_store_status
from dicom_node.delivery.http import classify_http_status, make_session
from dicom_node.delivery.report import (
    DeliveryReport,
    InstanceOutcome,
    OnOutcomes,
    SendItem,
    read_send_items,
)
from dicom_node.settings.destinations import StowRsDestination

__all__ = ["StowRsDeliverer"]

log = logging.getLogger(__name__)

BATCH_FILES = 50
BATCH_BYTES = 64 * 1024 * 1024


def _batches(items: list[SendItem]) -> list[list[SendItem]]:
    out: list[list[SendItem]] = []
    cur: list[SendItem] = []
    size = 0
    for item in items:
        n = item.path.stat().st_size if item.path.exists() else 0
        if cur and (len(cur) >= BATCH_FILES or size + n > BATCH_BYTES):
            out.append(cur)
            cur, size = [], 0
        cur.append(item)
        size += n
    if cur:
        out.append(cur)
    return out


def parse_store_response(
    ds: Dataset, batch: list[SendItem], elapsed: float, http_code: int
) -> list[InstanceOutcome]:
    """Per-instance outcomes from a STOW-RS response dataset."""
    stored: dict[str, int | None] = {}
    for ref in ds.get("ReferencedSOPSequence") or []:
        warn = ref.get("WarningReason")
        stored[str(ref.get("ReferencedSOPInstanceUID", ""))] = int(warn) if warn else None
    failed: dict[str, int | None] = {}
    for ref in ds.get("FailedSOPSequence") or []:
        reason = ref.get("FailureReason")
        failed[str(ref.get("ReferencedSOPInstanceUID", ""))] = int(reason) if reason else None
    every = not stored and not failed and 200 <= http_code < 300
    out = []
    for item in batch:
        uid, path = item.sop_instance_uid, str(item.path)
        if every or uid in stored:
            warn = stored.get(uid)
            out.append(
                InstanceOutcome(
                    path,
                    uid,
                    "delivered",
                    code=warn or http_code,
                    warning=warn is not None,
                    elapsed_s=elapsed,
                )
            )
        elif uid in failed:
            reason = failed[uid]
            outcome, _ = classify_store_status(reason)
            outcome = "permanent" if outcome == "delivered" else outcome
            text = f"0x{reason:04X}" if reason is not None else "no reason given"
            out.append(
                InstanceOutcome(
                    path,
                    uid,
                    outcome,
                    code=reason,
                    error=f"STOW-RS failure reason {text}",
                    elapsed_s=elapsed,
                )
            )
        else:
            out.append(
                InstanceOutcome(
                    path,
                    uid,
                    "transient",
                    code=http_code,
                    error="instance missing from the STOW-RS response",
                    elapsed_s=elapsed,
                )
            )
    return out


class StowRsDeliverer:
    """Sends files to one DICOMweb STOW-RS endpoint."""

    def __init__(self, destination: StowRsDestination) -> None:
        self.destination = destination

    def deliver(
        self,
        files: Sequence[Path | str],
        priority: str = "routine",
        label: str = "",
        on_outcomes: OnOutcomes | None = None,
    ) -> DeliveryReport:
        """STOW-RS the files in batches; never raises for delivery faults."""
        d = self.destination
        report = DeliveryReport(
            d.name, "stowrs", dt.datetime.now(dt.UTC), label=label, on_outcomes=on_outcomes
        )
        items, bad = read_send_items([Path(f) for f in files])
        report.add(*bad)
        with make_session(d.auth) as session:
            client = DICOMwebClient(url=d.url, session=session, timeout=d.timeout)
            client.set_http_retry_params(retry=False)
            batches = _batches(items)
            for b, batch in enumerate(batches):
                t0 = time.monotonic()
                try:
                    datasets = [dcmread(i.path) for i in batch]
                except Exception as exc:  # noqa: BLE001 - a bad file must not crash delivery
                    report.add(
                        *(
                            InstanceOutcome(
                                str(i.path),
                                i.sop_instance_uid,
                                "permanent",
                                error=f"cannot read batch file: {exc}",
                            )
                            for i in batch
                        )
                    )
                    continue
                try:
                    rsp = client.store_instances(datasets)
                except requests.HTTPError as exc:
                    report.add(*self._http_error(exc, batch, time.monotonic() - t0))
                except requests.RequestException as exc:
                    kind = "timeout" if isinstance(exc, requests.Timeout) else "connection_failed"
                    report.error_kind = kind
                    report.error = f"cannot reach STOW-RS at {d.url}: {exc}"
                    rest = [i for later in batches[b:] for i in later]
                    report.add(
                        *(
                            InstanceOutcome(
                                str(i.path), i.sop_instance_uid, "transient", error=report.error
                            )
                            for i in rest
                        )
                    )
                    break
                else:  # the request's response, recorded before the next request goes
                    report.add(*parse_store_response(rsp, batch, time.monotonic() - t0, 200))
        return report.finish()

    def _http_error(
        self, exc: requests.HTTPError, batch: list[SendItem], elapsed: float
    ) -> list[InstanceOutcome]:
        rsp = exc.response
        code = rsp.status_code if rsp is not None else 0
        if rsp is not None and code == 409:
            try:
                return parse_store_response(Dataset.from_json(rsp.json()), batch, elapsed, code)
            except ValueError:
                pass
        outcome = classify_http_status(code) if code else "transient"
        text = rsp.text[:300] if rsp is not None else str(exc)
        return [
            InstanceOutcome(
                str(i.path),
                i.sop_instance_uid,
                outcome,
                code=code or None,
                error=f"HTTP {code} from STOW-RS: {text}",
                elapsed_s=elapsed,
            )
            for i in batch
        ]
