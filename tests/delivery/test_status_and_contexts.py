"""Status classification (C-STORE, HTTP), presentation contexts, and warnings over a real
association (a pynetdicom Storage SCP answering chosen statuses: DCMTK's storescp cannot be
made to answer warnings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import ComputedRadiographyImageStorage, CTImageStorage

from dicom_node.delivery import deliver
from dicom_node.delivery.dimse import classify_store_status, requested_contexts
from dicom_node.delivery.http import classify_http_status
from dicom_node.delivery.report import SendItem
from dicom_node.settings.destinations import DimseDestination
from tests.support.ports import free_port


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0x0000, ("delivered", False)),
        (0xB000, ("delivered", True)),
        (0xB006, ("delivered", True)),
        (0xB007, ("delivered", True)),
        (0x0107, ("delivered", True)),
        (0xA700, ("transient", False)),
        (0xA7FF, ("transient", False)),
        (0x0213, ("transient", False)),
        (0x0110, ("transient", False)),
        (None, ("transient", False)),
        (0xA900, ("permanent", False)),
        (0xC000, ("permanent", False)),
        (0xC123, ("permanent", False)),
        (0x0122, ("permanent", False)),
        (0x0124, ("permanent", False)),
        (0x0117, ("permanent", False)),
    ],
)
def test_classify_store_status(code: int | None, expected: tuple[str, bool]) -> None:
    assert classify_store_status(code) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (408, "transient"),
        (429, "transient"),
        (500, "transient"),
        (503, "transient"),
    ],
)
def test_classify_http_status(code: int, expected: str) -> None:
    assert classify_http_status(code) == expected


def _item(sop: str, ts: str, n: int = 0) -> SendItem:
    return SendItem(Path(f"/{n}.dcm"), sop, f"1.2.{n}", ts)


def test_requested_contexts_only_what_is_sent() -> None:
    cr, ct = "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.2"
    ex, im, jpeg, big = (
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.2",
    )
    items = [
        _item(cr, ex, 1),
        _item(cr, im, 2),
        _item(cr, jpeg, 3),
        _item(ct, im, 4),
        _item(ct, im, 5),
        _item(ct, big, 6),
    ]
    assert requested_contexts(items) == [
        (cr, [ex, im]),  # both uncompressed CR files share one context
        (cr, [jpeg]),  # compressed: its own syntax only
        (ct, [im, ex]),  # the file's own syntax first
        (ct, [big]),  # big endian cannot be converted to little endian
    ]
    assert requested_contexts([]) == []


@pytest.fixture()
def status_scp():
    """A pynetdicom Storage SCP answering statuses from a queue (a real association)."""
    answers: list[int] = []
    seen: list[str] = []

    def on_store(event: evt.Event) -> int:
        seen.append(str(event.request.AffectedSOPInstanceUID))
        return answers.pop(0)

    ae = AE(ae_title="WARNSCP")
    ae.add_supported_context(ComputedRadiographyImageStorage)
    ae.add_supported_context(CTImageStorage)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        yield port, answers, seen
    finally:
        server.shutdown()


def test_warning_statuses_are_delivered_failures_classified(files, status_scp) -> None:
    port, answers, seen = status_scp
    batch = files["ct"] + files["cr"] + files["implicit"]
    answers.extend([0xB000, 0xB007, 0xA700, 0xC000][: len(batch)])
    batch = batch + files["rle"]  # RLE: the SCP supports only uncompressed -> no context
    report = deliver(
        DimseDestination(name="w", ae_title="WARNSCP", host="127.0.0.1", port=port, timeout=10),
        batch,
    )
    got = [(o.outcome, o.code, o.warning) for o in report.outcomes]
    assert got == [
        ("delivered", 0xB000, True),
        ("delivered", 0xB007, True),
        ("transient", 0xA700, False),
        ("permanent", 0xC000, False),
        ("permanent", None, False),
    ], report.summary()
    assert report.outcomes[2].error == "C-STORE status 0xA700"
    assert report.status == "transient"
    assert seen == [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in batch[:4]]
