"""DeliveryReport verdicts and STOW-RS response parsing (pure functions)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydicom.dataset import Dataset

from dicom_node.delivery.report import DeliveryReport, InstanceOutcome, SendItem
from dicom_node.delivery.stowrs import parse_store_response


def _report(*outcomes: str, error_kind: str | None = None) -> DeliveryReport:
    r = DeliveryReport("d", "dimse", dt.datetime.now(dt.UTC))
    r.outcomes = [InstanceOutcome(f"/{i}", f"1.{i}", o) for i, o in enumerate(outcomes)]
    if error_kind:
        r.error_kind, r.error = error_kind, "boom"
    return r.finish()


def test_report_status() -> None:
    assert _report("delivered", "delivered").status == "delivered"
    assert _report("delivered", "permanent", "transient").status == "transient"
    assert _report("permanent", "delivered").status == "permanent"
    assert _report().status == "delivered"  # nothing to send
    assert _report(error_kind="connection_failed").status == "transient"
    assert _report(error_kind="too_many_contexts").status == "permanent"
    r = _report("delivered", "transient", "permanent")
    assert r.undelivered_paths == ["/1", "/2"] and len(r.delivered) == 1 and not r.ok
    assert "1/3 delivered" in r.summary() and r.duration_s >= 0


def _ref(uid: str, **kw: int) -> Dataset:
    ds = Dataset()
    ds.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.ReferencedSOPInstanceUID = uid
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_stow_response_per_instance() -> None:
    batch = [
        SendItem(Path(f"/{u}.dcm"), "1.2.840.10008.5.1.4.1.1.1", u, "1.2.840.10008.1.2.1")
        for u in ("1.1", "1.2", "1.3", "1.4", "1.5")
    ]
    rsp = Dataset()
    rsp.ReferencedSOPSequence = [_ref("1.1"), _ref("1.2", WarningReason=0xB000)]
    rsp.FailedSOPSequence = [_ref("1.3", FailureReason=0xA700), _ref("1.4", FailureReason=0xC000)]
    got = [(o.outcome, o.code, o.warning) for o in parse_store_response(rsp, batch, 0.1, 202)]
    assert got == [
        ("delivered", 202, False),
        ("delivered", 0xB000, True),
        ("transient", 0xA700, False),
        ("permanent", 0xC000, False),
        ("transient", 202, False),
    ]  # 1.5: missing from the response
    every = parse_store_response(Dataset(), batch[:2], 0.1, 200)
    assert [o.outcome for o in every] == ["delivered", "delivered"]
