"""C-STORE SCU delivery with pynetdicom.

One association per call (per job and destination) carries the whole batch. It proposes
only what it sends: one presentation context per (SOP class, transfer syntax) of the
files; for uncompressed files the context also offers Explicit and Implicit VR Little
Endian so a peer that accepts only one of them still gets the file (pynetdicom re-encodes
between uncompressed syntaxes; compressed data is sent as is, never transcoded).

Classification (see docs/delivery.md for the reasons):

- delivered: 0x0000, and warnings 0xB000/0xB006/0xB007 (and the general warnings
  0x0001/0x0107/0x0116): the peer stored the object.
- transient: host name not resolved (in the destination's timeout: resolve.py), cannot
  connect, association rejected (either result), association aborted,
  no response (DIMSE/network timeout), out of resources 0xA7xx, resource limitation
  0x0213, duplicate invocation 0x0210, processing failure 0x0110, cancel 0xFE00.
- permanent: everything else the peer answered (0xA9xx data set does not match SOP class,
  0xCxxx cannot understand, 0x0122 SOP class not supported, 0x0124 not authorised…),
  no accepted presentation context for the file (or for any file: the association is
  accepted with every context rejected), unreadable file.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association

from dicom_node.delivery import resolve
from dicom_node.delivery.report import (
    DeliveryReport,
    InstanceOutcome,
    OnOutcomes,
    Outcome,
    SendItem,
    read_send_items,
)
from dicom_node.settings.destinations import DimseDestination

__all__ = ["DimseDeliverer", "classify_store_status", "requested_contexts"]

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are odd numbers 1..255

_WARNINGS = {0xB000, 0xB006, 0xB007, 0x0001, 0x0107, 0x0116}
_TRANSIENT_CODES = {0x0110, 0x0210, 0x0213, 0xFE00}

_PRIORITY = {"stat": 1, "routine": 0}  # C-STORE Priority: 1 HIGH, 0 MEDIUM


def classify_store_status(code: int | None) -> tuple[Outcome, bool]:
    """(outcome, is_warning) for a C-STORE response status; ``None`` = no response."""
    if code is None:
        return "transient", False
    if code == 0x0000:
        return "delivered", False
    if code in _WARNINGS:
        return "delivered", True
    if 0xA700 <= code <= 0xA7FF or code in _TRANSIENT_CODES:
        return "transient", False
    return "permanent", False


def requested_contexts(items: Sequence[SendItem]) -> list[tuple[str, list[str]]]:
    """The presentation contexts to propose for ``items``: (abstract syntax, [TS…]).

    One context per (SOP class, file transfer syntax); uncompressed files' contexts
    offer the file's syntax first, then Explicit and Implicit VR Little Endian.
    """
    contexts: dict[tuple[str, str], list[str]] = {}
    for item in items:
        ts = UID(item.transfer_syntax_uid)
        if not ts.is_compressed and not ts.is_deflated and ts.is_little_endian:
            # Any uncompressed little-endian file can go as Explicit or Implicit VR LE,
            # so all of a SOP class's uncompressed files share one context.
            syntaxes = contexts.setdefault((item.sop_class_uid, "uncompressed-le"), [str(ts)])
            for alt in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
                if str(alt) not in syntaxes:
                    syntaxes.append(str(alt))
        else:
            contexts.setdefault((item.sop_class_uid, str(ts)), [str(ts)])
    return [(sop_class, syntaxes) for (sop_class, _), syntaxes in contexts.items()]


def _pause_reactor(assoc: Association, timeout: float = 0.5) -> None:
    """Make sure the association's reactor thread is really parked before a C-STORE.

    Works around a race in pynetdicom (seen with 3.0.4): ``send_c_store`` pauses the
    reactor by clearing ``_reactor_checkpoint`` and waiting for ``_is_paused``, but that
    flag can still be True from a loop iteration that already passed the checkpoint. If
    the peer answers within that window (a fast peer on loopback), the reactor takes the
    C-STORE-RSP off the queue ("Received unexpected C-STORE service message"), and
    ``send_c_store`` waits for the whole DIMSE timeout, then aborts. Here we clear the
    checkpoint ourselves and wait until the reactor thread is actually blocked on it;
    ``send_c_store`` then finds it paused for real. Falls back to a short settle delay
    if the internals differ. Same family as pynetdicom#875 (sporadic "Received unexpected
    C-FIND service message"); the checkpoint itself came with pynetdicom#351. Re-test on
    any pynetdicom upgrade (tests/delivery) and drop this once upstream fixes it.
    """
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if checkpoint is None:
        return
    checkpoint.clear()
    waiters = getattr(getattr(checkpoint, "_cond", None), "_waiters", None)
    deadline = time.monotonic() + timeout
    if waiters is None:
        time.sleep(0.005)
        return
    while time.monotonic() < deadline and assoc.is_established:
        if getattr(assoc, "_is_paused", True) and len(waiters) > 0:
            return
        time.sleep(0.0001)


def _resume_reactor(assoc: Association) -> None:
    """Undo :func:`_pause_reactor` (harmless when already running)."""
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if checkpoint is not None:
        checkpoint.set()


def _probe_connect(host: str, port: int, timeout: float) -> str:
    """Why a TCP connection cannot be opened (only called after a failed associate)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "connected on a second try (peer closed the first connection)"
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _reject_text(assoc: Association) -> str:
    prim = assoc.acceptor.primitive
    if prim is None:
        return "association rejected"
    try:
        return (
            f"association rejected ({prim.result_str}, source: {prim.source_str}, "
            f"reason: {prim.reason_str})"
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return (
            f"association rejected (result {prim.result}, source {prim.result_source}, "
            f"reason {prim.diagnostic})"
        )


def _fail_all(
    report: DeliveryReport, items: Sequence[SendItem], outcome: Outcome
) -> DeliveryReport:
    """Every file of the batch failed with the attempt's error."""
    report.add(
        *(
            InstanceOutcome(str(i.path), i.sop_instance_uid, outcome, error=report.error)
            for i in items
        )
    )
    return report.finish()


class DimseDeliverer:
    """Sends files to one DIMSE destination; see the module docstring."""

    def __init__(self, destination: DimseDestination) -> None:
        self.destination = destination

    def _ae(self, contexts: list[tuple[str, list[str]]]) -> AE:
        d = self.destination
        ae = AE(ae_title=d.calling_ae_title)
        ae.connection_timeout = d.timeout
        ae.acse_timeout = d.timeout
        ae.dimse_timeout = d.timeout
        ae.network_timeout = d.timeout
        for abstract, syntaxes in contexts:
            ae.add_requested_context(abstract, syntaxes)
        return ae

    def deliver(
        self,
        files: Sequence[Path | str],
        priority: str = "routine",
        label: str = "",
        on_outcomes: OnOutcomes | None = None,
    ) -> DeliveryReport:
        """Send ``files`` over one association; never raises for delivery faults."""
        d = self.destination
        report = DeliveryReport(
            d.name, "dimse", dt.datetime.now(dt.UTC), label=label, on_outcomes=on_outcomes
        )
        items, bad = read_send_items([Path(f) for f in files])
        report.add(*bad)
        if not items:
            return report.finish()
        contexts = requested_contexts(items)
        report.detail["proposed_contexts"] = [[a, list(t)] for a, t in contexts]
        if len(contexts) > MAX_CONTEXTS:
            report.error_kind = "too_many_contexts"
            report.error = (
                f"{len(contexts)} presentation contexts needed, at most "
                f"{MAX_CONTEXTS} fit in one association; send fewer SOP classes"
            )
            return _fail_all(report, items, "permanent")

        opened: list[bool] = []
        t0 = time.monotonic()
        address = d.host
        try:
            # pynetdicom resolves a host name with no time limit: resolved here within
            # the timeout, and the association made to the address.
            address = resolve.first_address(d.host, d.timeout)
            assoc = self._ae(contexts).associate(
                address,
                d.port,
                ae_title=d.ae_title,
                evt_handlers=[(evt.EVT_CONN_OPEN, lambda _e: opened.append(True))],
            )
        except (OSError, ValueError, RuntimeError) as exc:  # e.g. host name not resolved
            assoc = None
            report.error_kind = "connection_failed"
            report.error = f"cannot connect to {d.host}:{d.port}: {exc}"
        report.detail["associate_s"] = round(time.monotonic() - t0, 4)
        if assoc is None or not assoc.is_established:
            if assoc is None:
                pass  # error set above
            elif assoc.is_rejected:
                report.error_kind, report.error = "association_rejected", _reject_text(assoc)
            elif assoc.rejected_contexts and not assoc.accepted_contexts:
                # Accepted, but none of what we send (pynetdicom then aborts): like one
                # file without a context, the peer's configuration, not a passing fault.
                report.error_kind = "no_accepted_context"
                report.error = f"{d.ae_title} accepted none of the presentation contexts: " + (
                    "; ".join(
                        f"{cx.abstract_syntax.name} ({cx.status})" for cx in assoc.rejected_contexts
                    )
                )
                return _fail_all(report, items, "permanent")
            elif not opened:
                why = _probe_connect(address, d.port, min(d.timeout, 5.0))
                report.error_kind = "connection_failed"
                report.error = f"cannot connect to {d.host}:{d.port}: {why}"
            else:
                report.error_kind = "association_aborted"
                report.error = (
                    f"association with {d.ae_title}@{d.host}:{d.port} aborted or "
                    f"timed out during negotiation"
                )
            return _fail_all(report, items, "transient")

        report.detail["accepted_contexts"] = [
            [str(cx.abstract_syntax), str(cx.transfer_syntax[0])] for cx in assoc.accepted_contexts
        ]
        try:
            for n, item in enumerate(items):
                outcome = self._send_one(assoc, item, n, priority, label)
                report.add(outcome)
                if outcome.code is None and outcome.outcome == "transient":
                    # No response: the peer aborted or timed out. Don't wait on it again.
                    if assoc.is_established:
                        assoc.abort()
                    report.error_kind = "association_aborted"
                    report.error = outcome.error
                    report.add(
                        *(
                            InstanceOutcome(
                                str(i.path),
                                i.sop_instance_uid,
                                "transient",
                                error="not sent: association ended after a failure",
                            )
                            for i in items[n + 1 :]
                        )
                    )
                    break
        finally:
            if assoc.is_established:
                assoc.release()
        return report.finish()

    def _send_one(
        self, assoc: Association, item: SendItem, n: int, priority: str, label: str = ""
    ) -> InstanceOutcome:
        path, uid = str(item.path), item.sop_instance_uid
        if not assoc.is_established:
            return InstanceOutcome(
                path, uid, "transient", error="association ended before this instance was sent"
            )
        t0 = time.monotonic()
        try:
            _pause_reactor(assoc)
            rsp = assoc.send_c_store(
                item.path, msg_id=(n % 65535) + 1, priority=_PRIORITY.get(priority, 0)
            )
        except ValueError as exc:  # no accepted presentation context, cannot encode
            return InstanceOutcome(
                path, uid, "permanent", error=str(exc), elapsed_s=time.monotonic() - t0
            )
        except Exception as exc:  # unreadable/unencodable file: an outcome, never a crash
            log.exception(
                "%sC-STORE of %s to %s failed",
                f"[{label}] " if label else "",
                path,
                self.destination.name,
            )
            return InstanceOutcome(
                path,
                uid,
                "permanent",
                error=f"cannot send {path}: {type(exc).__name__}: {exc}",
                elapsed_s=time.monotonic() - t0,
            )
        finally:
            _resume_reactor(assoc)  # send_c_store resumes it too, but not when it raised
        elapsed = time.monotonic() - t0
        code = int(rsp.Status) if rsp and "Status" in rsp else None
        outcome, warning = classify_store_status(code)
        if code is None:
            error = (
                "no C-STORE response (association aborted or timed out after "
                f"{self.destination.timeout}s)"
            )
        elif outcome == "delivered":
            error = None
        else:
            comment = rsp.get("ErrorComment", "")
            error = f"C-STORE status 0x{code:04X}" + (f": {comment}" if comment else "")
        if warning:
            log.info(
                "%sC-STORE of %s to %s: warning status 0x%04X, treated as delivered",
                f"[{label}] " if label else "",
                uid,
                self.destination.name,
                code,
            )
        return InstanceOutcome(
            path, uid, outcome, code=code, warning=warning, error=error, elapsed_s=elapsed
        )
