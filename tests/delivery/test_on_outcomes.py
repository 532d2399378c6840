"""Each response reaches ``on_outcomes`` as it arrives, before the next file is sent; a
response that cannot be recorded stops the delivery (nothing is sent unrecorded).

Real peers: DCMTK storescp (C-STORE) and Orthanc (REST, and STOW-RS with its DICOMweb
plugin)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node.delivery import InstanceOutcome, deliver
from dicom_node.settings.destinations import DestinationAdapter, DimseDestination
from tests.support.orthanc import Orthanc
from tests.support.storescp import StoreSCP

pytestmark = pytest.mark.peer


class RecordFailed(Exception):
    """Stands for the index refusing a write (disk full, database gone)."""


def uid_of(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    with Orthanc(tmp_path_factory.mktemp("orthanc"), aet="ORTHANC") as server:
        yield server


def test_dimse_hands_over_each_response_before_the_next_send(files, tmp_path: Path) -> None:
    batch = files["ct"] + files["cr"] + files["implicit"]
    calls: list[tuple[list[str], int]] = []
    with StoreSCP(tmp_path / "scp") as scp:
        dest = DimseDestination(
            name="scp", ae_title="STORESCP", host="127.0.0.1", port=scp.port, timeout=10
        )

        def on_outcomes(outcomes: Sequence[InstanceOutcome]) -> None:
            calls.append(([o.sop_instance_uid for o in outcomes], len(scp.received())))

        report = deliver(dest, batch, on_outcomes=on_outcomes)
    assert report.ok, report.summary()
    # One call per instance, in order; the peer held exactly as many files as answered.
    assert calls == [([uid_of(p)], n) for n, p in enumerate(batch, 1)]


def test_dimse_stops_when_a_response_cannot_be_recorded(files, tmp_path: Path) -> None:
    batch = files["ct"] + files["cr"]

    def on_outcomes(outcomes: Sequence[InstanceOutcome]) -> None:
        raise RecordFailed("database is locked")

    with StoreSCP(tmp_path / "scp") as scp:
        dest = DimseDestination(
            name="scp", ae_title="STORESCP", host="127.0.0.1", port=scp.port, timeout=10
        )
        with pytest.raises(RecordFailed):
            deliver(dest, batch, on_outcomes=on_outcomes)
        received = scp.wait_for_files(1)
        log = scp.log_text()
    assert [uid_of(p) for p in received] == [uid_of(batch[0])]
    assert "Association Release" in log  # released, not left hanging


def test_orthanc_rest_hands_over_each_response_then_stops_on_failure(
    orthanc: Orthanc, files
) -> None:
    dest = DestinationAdapter.validate_python(
        {"name": "orthanc", "kind": "orthanc", "url": orthanc.url, "timeout": 10}
    )
    batch = files["ct"] + files["rle"]
    seen: list[tuple[str, bool, bool]] = []

    def stored(path: Path) -> bool:
        return orthanc.find_instance(uid_of(path)) is not None

    def on_outcomes(outcomes: Sequence[InstanceOutcome]) -> None:
        (o,) = outcomes
        n = len(seen)
        seen.append((o.sop_instance_uid, stored(batch[n]), any(map(stored, batch[n + 1 :]))))
        if len(seen) == 2:
            raise RecordFailed("disk full")

    with pytest.raises(RecordFailed):
        deliver(dest, batch, on_outcomes=on_outcomes)
    # Each answer came stored, nothing after it sent yet; the third file never went.
    assert seen == [(uid_of(batch[0]), True, False), (uid_of(batch[1]), True, False)]
    assert orthanc.find_instance(uid_of(batch[2])) is None


def test_stowrs_hands_over_each_request_response(orthanc: Orthanc, files) -> None:
    if not orthanc.has_dicomweb:
        pytest.skip("orthanc-dicomweb not installed")
    batch = files["cr"] + files["implicit"]
    for per_request, expected in (
        (1, [[(uid_of(p), "delivered")] for p in batch]),  # the default: one each
        (2, [[(uid_of(p), "delivered") for p in batch]]),  # one request, one response
    ):
        dest = DestinationAdapter.validate_python(
            {
                "name": "web",
                "kind": "stowrs",
                "url": orthanc.dicomweb_url,
                "timeout": 20,
                "instances_per_request": per_request,
            }
        )
        calls: list[list[tuple[str, str]]] = []
        report = deliver(
            dest,
            batch,
            on_outcomes=lambda outs, calls=calls: calls.append(
                [(o.sop_instance_uid, o.outcome) for o in outs]
            ),
        )
        assert report.ok, report.summary()
        assert calls == expected
