"""Delivery to a DICOMweb server with STOW-RS.

Files go in batches of ``instances_per_request`` (default 1: an answer comes per
request, so a kill -9 mid-request sends the whole batch again), each one
``POST {url}/studies`` of ``multipart/related; type="application/dicom"`` carrying the
files as they are on disk. The answer is read with bounds
(:func:`dicom_node.delivery.http.post`: no redirects followed, at most 1 MiB, within the
timeout). The STOW-RS response names each instance in Referenced SOP Sequence (stored; a
Warning Reason makes it a warning) or in Failed SOP Sequence (with a Failure Reason,
classified like a C-STORE status). HTTP errors: 408/429/5xx and connection errors are
transient, other 3xx/4xx permanent; a 202 or 409 body is parsed per instance. A body
that cannot be read as DICOM JSON counts as empty: a 200 (all stored) stays all
delivered; for a 202 each instance is then missing (transient).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests
from pydicom.dataset import Dataset

from dicom_node.delivery.dimse import classify_store_status
from dicom_node.delivery.http import (
    Answer,
    classify_http_status,
    http_error_text,
    make_session,
    post,
)
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

BATCH_BYTES = 64 * 1024 * 1024


def _batches(items: list[SendItem], per_request: int) -> list[list[SendItem]]:
    """``items`` in requests of at most ``per_request`` files and BATCH_BYTES."""
    out: list[list[SendItem]] = []
    cur: list[SendItem] = []
    size = 0
    for item in items:
        n = item.path.stat().st_size if item.path.exists() else 0
        if cur and (len(cur) >= per_request or size + n > BATCH_BYTES):
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
    every = not stored and not failed and http_code == 200  # 200: all were stored
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


_JSON_TYPES = ("application/dicom+json", "application/json")
# What a malformed DICOM JSON body can raise in pydicom (from_json, element access).
# What a malformed DICOM JSON answer makes pydicom or the reading raise (OverflowError:
# a Failure Reason of 1e999, an infinite float, made an integer).
_MALFORMED = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    RecursionError,
    OverflowError,
)


def multipart(files: Sequence[bytes]) -> tuple[bytes, str]:
    """A STOW-RS request body of Part 10 files, and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for data in files:
        parts += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), data]
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f'multipart/related; type="application/dicom"; boundary={boundary}'


def read_store_answer(
    answer: Answer, batch: list[SendItem], elapsed: float, url: str, label: str = ""
) -> list[InstanceOutcome]:
    """Per-instance outcomes of one STOW-RS request's answer; never raises."""
    code = answer.status
    if 200 <= code < 300 or code == 409:
        ds, why = Dataset(), ""
        if answer.truncated:
            why = "longer than 1 MiB"
        elif answer.body.strip() and answer.media_type not in _JSON_TYPES:
            why = f"media type {answer.media_type or '(none)'!r} is not DICOM JSON"
        elif answer.body.strip():
            try:
                ds = Dataset.from_json(json.loads(answer.body))
                if code != 409 or "FailedSOPSequence" in ds or "ReferencedSOPSequence" in ds:
                    return parse_store_response(ds, batch, elapsed, code)
            except _MALFORMED as exc:
                ds, why = Dataset(), f"not valid DICOM JSON ({type(exc).__name__}: {exc})"
        if why:
            log.warning(
                "%sSTOW-RS answer from %s (HTTP %d) unreadable: %s",
                f"[{label}] " if label else "",
                url,
                code,
                why[:200],
            )
        if code != 409:
            return parse_store_response(ds, batch, elapsed, code)
    outcome = classify_http_status(code)
    error = http_error_text(answer, url)
    return [
        InstanceOutcome(
            str(i.path), i.sop_instance_uid, outcome, code=code, error=error, elapsed_s=elapsed
        )
        for i in batch
    ]


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
        url = f"{d.url}/studies"
        report = DeliveryReport(
            d.name, "stowrs", dt.datetime.now(dt.UTC), label=label, on_outcomes=on_outcomes
        )
        items, bad = read_send_items([Path(f) for f in files])
        report.add(*bad)
        with make_session(d.auth) as session:
            batches = _batches(items, d.instances_per_request)
            for b, batch in enumerate(batches):
                t0 = time.monotonic()
                batch, data = self._read(batch, report)
                if not batch:
                    continue
                body, content_type = multipart(data)
                del data
                headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
                try:
                    answer = post(session, url, body, headers, d.timeout)
                except requests.RequestException as exc:
                    kind = "timeout" if isinstance(exc, requests.Timeout) else "connection_failed"
                    report.error_kind = kind
                    report.error = f"cannot reach STOW-RS at {d.url}: {exc}"
                    rest = batch + [i for later in batches[b + 1 :] for i in later]
                    report.add(
                        *(
                            InstanceOutcome(
                                str(i.path), i.sop_instance_uid, "transient", error=report.error
                            )
                            for i in rest
                        )
                    )
                    break
                # the request's answer, recorded before the next request goes
                elapsed = time.monotonic() - t0
                report.add(*read_store_answer(answer, batch, elapsed, url, label))
        return report.finish()

    @staticmethod
    def _read(batch: list[SendItem], report: DeliveryReport) -> tuple[list[SendItem], list[bytes]]:
        """The batch's files' bytes; one that cannot be read is a permanent outcome."""
        kept: list[SendItem] = []
        data: list[bytes] = []
        for item in batch:
            try:
                data.append(item.path.read_bytes())
            except OSError as exc:
                report.add(
                    InstanceOutcome(
                        str(item.path),
                        item.sop_instance_uid,
                        "permanent",
                        error=f"cannot read {item.path}: {exc}",
                    )
                )
                continue
            kept.append(item)
        return kept, data
