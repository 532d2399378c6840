"""C-STORE delivery to a real DCMTK storescp: content, contexts, rejects, peer down, aborts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom.dsutils import split_dataset

from dicom_node.delivery import deliver
from dicom_node.settings.destinations import DimseDestination
from tests.support.ports import free_port
from tests.support.storescp import StoreSCP, proposed_contexts

pytestmark = pytest.mark.peer


def dest(scp_port: int, ae: str = "STORESCP", timeout: float = 10) -> DimseDestination:
    return DimseDestination(
        name="scp",
        ae_title=ae,
        host="127.0.0.1",
        port=scp_port,
        calling_ae_title="DICOM_NODE",
        timeout=timeout,
    )


def dataset_bytes(path: Path) -> bytes:
    """The encoded dataset after the file meta information."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def by_uid(paths: list[Path]) -> dict[str, Path]:
    return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in paths}


def test_batch_arrives_byte_identical_over_one_association(files, tmp_path: Path) -> None:
    batch = files["cr"] + files["ct"]
    with StoreSCP(tmp_path / "scp") as scp:
        report = deliver(dest(scp.port), batch)
        received = scp.wait_for_files(3)
        log = scp.log_text()
    assert report.ok and report.status == "delivered", report.summary()
    assert [(o.outcome, o.code, o.warning) for o in report.outcomes] == [
        ("delivered", 0, False)
    ] * 3
    sent = by_uid(batch)
    got = by_uid(received)
    assert set(got) == set(sent)
    for uid, path in sent.items():
        assert dataset_bytes(got[uid]) == dataset_bytes(path), uid
    # one association for the batch, proposing only what was sent
    assert log.count("BEGIN A-ASSOCIATE-RQ") == 1
    assert proposed_contexts(log) == [
        [
            ("ComputedRadiographyImageStorage", ["LittleEndianExplicit", "LittleEndianImplicit"]),
            ("CTImageStorage", ["LittleEndianExplicit", "LittleEndianImplicit"]),
        ]
    ]
    assert report.detail["accepted_contexts"] == [
        ["1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.1.2.1"],
        ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1"],
    ]


def test_compressed_file_is_proposed_in_its_own_syntax_only(files, tmp_path: Path) -> None:
    with StoreSCP(tmp_path / "scp") as scp:
        report = deliver(dest(scp.port), files["rle"] + files["implicit"])
        received = scp.wait_for_files(2)
        log = scp.log_text()
    assert report.ok, report.summary()
    assert proposed_contexts(log) == [
        [
            ("ComputedRadiographyImageStorage", ["RLELossless"]),
            ("ComputedRadiographyImageStorage", ["LittleEndianImplicit", "LittleEndianExplicit"]),
        ]
    ]
    got = by_uid(received)
    rle_uid = str(dcmread(files["rle"][0]).SOPInstanceUID)
    assert dataset_bytes(got[rle_uid]) == dataset_bytes(files["rle"][0])
    assert str(dcmread(got[rle_uid]).file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.5"


def test_uncompressed_falls_back_to_implicit_when_the_peer_wants_only_that(
    files, tmp_path: Path
) -> None:
    with StoreSCP(tmp_path / "scp", extra_args=["+xi"], accept_all=False) as scp:
        report = deliver(dest(scp.port), files["cr"])
        received = scp.wait_for_files(1)
    assert report.ok, report.summary()
    assert report.detail["accepted_contexts"] == [
        ["1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.1.2"]
    ]
    original, copy = dcmread(files["cr"][0]), dcmread(received[0])
    assert copy.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert copy == original  # same content, re-encoded implicit


def ct_only(tmp_path: Path) -> list[str]:
    """storescp arguments: accept CT Image Storage (uncompressed) only."""
    cfg = tmp_path / "ct-only.cfg"
    cfg.write_text(
        "[[TransferSyntaxes]]\n[Uncompressed]\nTransferSyntax1 = LocalEndianExplicit\n"
        "TransferSyntax2 = LittleEndianImplicit\n"
        "[[PresentationContexts]]\n[CTOnly]\nPresentationContext1 = CTImageStorage\\Uncompressed\n"
        "[[Profiles]]\n[CTOnly]\nPresentationContexts = CTOnly\n"
    )
    return ["-xf", str(cfg), "CTOnly"]


def test_unsupported_sop_class_is_a_permanent_per_instance_failure(files, tmp_path: Path) -> None:
    with StoreSCP(tmp_path / "scp", accept_all=False, extra_args=ct_only(tmp_path)) as scp:
        report = deliver(dest(scp.port), files["cr"] + files["ct"])
        scp.wait_for_files(2)
    outcomes = [o.outcome for o in report.outcomes]
    assert outcomes == ["permanent", "delivered", "delivered"], report.summary()
    assert "No presentation context" in (report.outcomes[0].error or "")
    assert report.status == "permanent" and report.undelivered_paths == [str(files["cr"][0])]


def test_every_context_rejected_is_permanent_not_a_retried_abort(files, tmp_path: Path) -> None:
    """The peer accepts the association but none of what we send (pynetdicom then aborts
    it): the same as one file without a context, permanent, and the error says why."""
    with StoreSCP(tmp_path / "scp", accept_all=False, extra_args=ct_only(tmp_path)) as scp:
        report = deliver(dest(scp.port), files["cr"] + files["rle"])
        assert scp.received() == []
    assert report.status == "permanent", report.summary()
    assert report.error_kind == "no_accepted_context"
    assert [o.outcome for o in report.outcomes] == ["permanent", "permanent"]
    assert "Computed Radiography Image Storage" in (report.error or ""), report.error
    assert "abstract syntax not supported" in (report.error or "").lower(), report.error


def test_rejected_association_is_transient(files, tmp_path: Path) -> None:
    with StoreSCP(tmp_path / "scp", extra_args=["--refuse"]) as scp:
        report = deliver(dest(scp.port), files["cr"] + files["ct"])
        assert scp.received() == []
    assert report.status == "transient" and report.error_kind == "association_rejected"
    assert "Rejected Permanent" in (report.error or "")
    assert [o.outcome for o in report.outcomes] == ["transient"] * 3
    assert len(report.undelivered_paths) == 3


def test_destination_down_is_transient_then_delivered_when_back(files, tmp_path: Path) -> None:
    port = free_port()
    report = deliver(dest(port), files["cr"], label="job 7")
    assert report.summary().startswith("[job 7] scp (dimse): 0/1 delivered")
    assert report.status == "transient" and report.error_kind == "connection_failed"
    assert "Connection refused" in (report.error or ""), report.error
    assert report.outcomes[0].code is None
    with StoreSCP(tmp_path / "scp", port=port) as scp:  # the destination comes back
        again = deliver(dest(port), report.undelivered_paths)
        scp.wait_for_files(1)
    assert again.ok, again.summary()


def test_abort_during_store_is_transient(files, tmp_path: Path) -> None:
    with StoreSCP(tmp_path / "scp", extra_args=["--abort-after"]) as scp:
        report = deliver(dest(scp.port), files["ct"])
    assert [o.outcome for o in report.outcomes] == ["transient", "transient"], report.summary()
    assert "no C-STORE response" in (report.outcomes[0].error or "")
    assert "association ended" in (report.outcomes[1].error or "")


def test_unreadable_file_is_permanent_and_does_not_stop_the_batch(files, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with StoreSCP(tmp_path / "scp") as scp:
        report = deliver(dest(scp.port), [junk, *files["cr"]])
        scp.wait_for_files(1)
    assert [o.outcome for o in report.outcomes] == ["permanent", "delivered"]
    assert "junk.dcm" in (report.outcomes[0].error or "")


def test_response_timeout_is_transient(files, tmp_path: Path) -> None:
    # storescp answers the first C-STORE, then sleeps 3 s before reading the next one
    with StoreSCP(tmp_path / "scp", extra_args=["--sleep-after", "3"]) as scp:
        report = deliver(dest(scp.port, timeout=1), files["ct"])
    assert [o.outcome for o in report.outcomes] == ["delivered", "transient"], report.summary()
    assert report.status == "transient" and report.error_kind == "association_aborted"
    assert "timed out after 1.0s" in (report.outcomes[1].error or "")
    assert report.undelivered_paths == [str(files["ct"][1])]


def test_unresolvable_host_is_transient(files) -> None:
    d = DimseDestination(name="x", ae_title="X", host="no-such-host.invalid", port=104, timeout=2)
    report = deliver(d, files["cr"])
    assert report.status == "transient" and report.error_kind == "connection_failed"
    assert "no-such-host.invalid" in (report.error or "")
