"""Receive path against DCMTK and pynetdicom peers: store, assemble, reject, transcode-free."""

from __future__ import annotations

import datetime as dt
import re
import resource
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.filereader import read_preamble
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import Verification
from typer.testing import CliRunner

from dicom_node.cli import app
from tests.support.dcmtk import echoscu, storescu
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw
from tests.support.studies import make_study, spooled_data
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer


def test_echo(node: NodeProcess) -> None:
    r = echoscu(node.port, "DICOM_NODE")
    assert r.returncode == 0, r.stderr
    banner = node.log()
    for expected in (
        "AE title: DICOM_NODE",
        "AE title: RESTRICTED",
        f"port: {node.port}",
        f"data dir: {node.data_dir.resolve()}",
        "database: sqlite:///",
        "demo-cxr-densenet121 1.0.0 on CPUExecutionProvider  [NON-CLINICAL DEMO]",
    ):
        assert expected in banner, (expected, banner)


def test_ct_study_arrives_complete_and_assembles_once(node: NodeProcess, tmp_path: Path) -> None:
    files = make_study(tmp_path / "src", 100, seed=11)
    r = storescu(node.port, files)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("Received Store Response (Success)") == 100
    study_uid = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    # Inside the quiet period the group is still open.
    rows = query(node.data_dir, "SELECT state FROM groups WHERE study_uid=:s", s=study_uid)
    assert rows == [("open",)]
    for src in files:
        ds_src = dcmread(src)
        row = query(
            node.data_dir,
            "SELECT path, study_uid, series_uid, modality, rows, "
            "transfer_syntax, calling_ae, called_ae FROM instances "
            "WHERE sop_instance_uid=:u",
            u=ds_src.SOPInstanceUID,
        )
        assert len(row) == 1
        path, study, series, modality, nrows, ts, calling, called = row[0]
        assert (study, series, modality, nrows) == (study_uid, ds_src.SeriesInstanceUID, "CT", 128)
        assert (ts, calling, called) == ("1.2.840.10008.1.2.1", "STORESCU", "DICOM_NODE")
        assert Path(path) == (
            node.data_dir.resolve()
            / "instances"
            / study_uid
            / ds_src.SeriesInstanceUID
            / f"{ds_src.SOPInstanceUID}.dcm"
        )
        ds = dcmread(path)
        assert ds.SOPInstanceUID == ds_src.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds_src.SOPInstanceUID
        assert ds.PixelData == ds_src.PixelData
    groups = wait_until(
        lambda: query(
            node.data_dir,
            "SELECT id, instance_count, last_received, completed_at, patient_id, "
            "modalities FROM groups WHERE study_uid=:s AND completed_at IS NOT NULL",
            s=study_uid,
        )
    )
    assert len(groups) == 1
    _, count, last, completed, patient, mods = groups[0]
    assert (count, patient, mods) == (100, "P11", "CT")
    waited = (
        dt.datetime.fromisoformat(str(completed)) - dt.datetime.fromisoformat(str(last))
    ).total_seconds()
    assert 1.5 <= waited < 5, waited
    # Still exactly one group for the study a while later (completes once).
    assert len(query(node.data_dir, "SELECT id FROM groups WHERE study_uid=:s", s=study_uid)) == 1
    # Routing follows completion on the node's own schedule: wait for its verdict.
    wait_until(
        lambda: (
            query(node.data_dir, "SELECT state FROM groups WHERE study_uid=:s", s=study_uid)
            == [("unrouted",)]
        )
    )
    out = CliRunner().invoke(app, ["studies", "list", "--data-dir", str(node.data_dir)])
    assert out.exit_code == 0, out.output
    assert "P11" in out.output and "unrouted" in out.output and "100" in out.output
    dd = ["--data-dir", str(node.data_dir)]
    out = CliRunner().invoke(app, ["studies", "list", "--state", "unrouted", *dd])
    assert out.exit_code == 0 and "P11" in out.output, out.output
    out = CliRunner().invoke(app, ["studies", "list", "--state", "unroutd", *dd])
    assert out.exit_code == 2 and "unroutd" in out.output, out.output


def test_late_instance_opens_a_new_group_and_series_grouping(
    node: NodeProcess, tmp_path: Path
) -> None:
    files = make_study(tmp_path / "src", 3, seed=12)
    assert storescu(node.port, files[:2], called="BYSERIES").returncode == 0
    series = dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID
    wait_until(
        lambda: query(
            node.data_dir,
            "SELECT id FROM groups WHERE group_key=:s AND completed_at IS NOT NULL",
            s=series,
        )
    )
    assert storescu(node.port, files[2:], called="BYSERIES").returncode == 0
    rows = wait_until(
        lambda: (
            (
                r := query(
                    node.data_dir,
                    "SELECT group_by, series_uid, instance_count, state FROM groups "
                    "WHERE group_key=:s ORDER BY id",
                    s=series,
                )
            )
            and all(x[3] not in ("open", "complete") for x in r)  # routed: a final state
            and len(r) == 2
            and r
        )
    )
    # Both groups completed (and were then routed: no rule matches this CT).
    assert rows == [("series", series, 2, "unrouted"), ("series", series, 1, "unrouted")]


def test_unknown_called_ae_rejected(node: NodeProcess) -> None:
    r = echoscu(node.port, "NOBODY")
    assert r.returncode != 0
    assert "Called AE Title Not Recognized" in r.stderr, r.stderr
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="NOBODY")
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x07)


def test_calling_ae_allow_list(node: NodeProcess) -> None:
    r = echoscu(node.port, "RESTRICTED", calling="BADSCU")
    assert r.returncode != 0
    assert "Calling AE Title Not Recognized" in r.stderr, r.stderr
    # Right title, wrong host: rejected too.
    assert (
        "Calling AE Title Not Recognized"
        in echoscu(node.port, "RESTRICTED", calling="HOSTSCU").stderr
    )
    ae = AE(ae_title="BADSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="RESTRICTED")
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03)
    assert echoscu(node.port, "RESTRICTED", calling="GOODSCU").returncode == 0


def test_unsupported_sop_class_rejected_by_context_and_logged(
    node: NodeProcess, tmp_path: Path
) -> None:
    ct = make_study(tmp_path / "src", 1, seed=14)[0]
    private = "1.2.826.0.1.3680043.9.9999.14"  # not a Storage SOP class pynetdicom knows
    ds = dcmread(ct)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = private
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    odd = tmp_path / "private.dcm"
    ds.save_as(odd)
    # pynetdicom shows the negotiation result: that context alone is refused.
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(private, ExplicitVRLittleEndian)
    ae.add_requested_context(dcmread(ct).SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    try:
        (refused,) = assoc.rejected_contexts
        assert (refused.abstract_syntax, refused.result) == (private, 0x03)
        assert assoc.send_c_store(dcmread(ct)).Status == 0x0000  # the rest is served
    finally:
        assoc.release()
    # The node's log names the SOP class it refused and why.
    wait_until(
        lambda: (
            f"rejected 1 presentation context(s): unknown SOP class {private} "
            "(abstract syntax not supported)" in node.log()
        ),
        timeout=5,
    )
    # storescu finds no context for it (it does not propose unknown classes); nothing stored.
    r = storescu(node.port, [odd])
    assert r.returncode != 0 and "No presentation context" in r.stderr, r.stderr
    assert (
        query(
            node.data_dir, "SELECT id FROM instances WHERE sop_instance_uid=:u", u=ds.SOPInstanceUID
        )
        == []
    )


def test_garbage_dataset_fails_and_node_keeps_serving(node: NodeProcess, tmp_path: Path) -> None:
    src = make_study(tmp_path / "src", 1, seed=13)[0]
    ds = dcmread(src)
    bad = tmp_path / "garbage.dcm"
    with open(src, "rb") as f:
        read_preamble(f, False)
        from pydicom.filereader import _read_file_meta_info

        _read_file_meta_info(f)
        meta_end = f.tell()
    raw = src.read_bytes()
    bad.write_bytes(raw[:meta_end] + bytes(range(256)) * 50)
    status = store_file_raw(node.port, bad)
    assert status >= 0xC000 and status <= 0xCFFF, hex(status)
    assert (
        query(
            node.data_dir, "SELECT id FROM instances WHERE sop_instance_uid=:u", u=ds.SOPInstanceUID
        )
        == []
    )
    assert not list((node.data_dir / "instances").rglob(f"{ds.SOPInstanceUID}.dcm"))
    assert not spooled_data(node.data_dir / "incoming")
    assert echoscu(node.port, "DICOM_NODE").returncode == 0
    # The real instance afterwards is stored fine.
    assert store_file_raw(node.port, src) == 0x0000


def test_compressed_instance_stored_without_transcoding(node: NodeProcess) -> None:
    for name in ("JPEG-lossy.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm"):
        src = Path(get_testdata_file(name))
        assert store_file_raw(node.port, src) == 0x0000
        ds_src = dcmread(src)
        ((path, ts),) = query(
            node.data_dir,
            "SELECT path, transfer_syntax FROM instances WHERE sop_instance_uid=:u",
            u=ds_src.SOPInstanceUID,
        )
        assert ts == ds_src.file_meta.TransferSyntaxUID
        stored = Path(path).read_bytes()
        source = src.read_bytes()
        # The dataset after the File Meta is byte-identical to what was sent.
        assert stored.endswith(source[_meta_end(src) :])
        assert len(stored) - _meta_end(Path(path)) == len(source) - _meta_end(src)


def _meta_end(path: Path) -> int:
    from pydicom.filereader import _read_file_meta_info

    with open(path, "rb") as f:
        read_preamble(f, False)
        _read_file_meta_info(f)
        return f.tell()


def test_duplicate_keeps_first(node: NodeProcess, tmp_path: Path) -> None:
    files = make_study(tmp_path / "src", 2, seed=14)
    assert storescu(node.port, files).returncode == 0
    r = storescu(node.port, files[:1])
    assert r.returncode == 0 and "Received Store Response (Success)" in r.stderr
    sop = dcmread(files[0], stop_before_pixels=True).SOPInstanceUID
    assert (
        len(query(node.data_dir, "SELECT id FROM instances WHERE sop_instance_uid=:u", u=sop)) == 1
    )


def test_disk_reserve_refuses_with_a700(tmp_path: Path) -> None:
    files = make_study(tmp_path / "src", 3, seed=15)
    with NodeProcess(tmp_path / "node", {"disk_reserve_mb": 10**9}) as proc:
        assert [store_file_raw(proc.port, f) for f in files] == [0xA700] * 3
        r = storescu(proc.port, files[:1])
        assert "Refused: OutOfResources" in r.stderr, r.stderr
        assert query(proc.data_dir, "SELECT count(*) FROM instances") == [(0,)]
    log = proc.log()
    assert len(re.findall("below the reserve", log)) == 1, log


def _limit_file_size() -> None:
    # Writes past 450 kB fail with EFBIG (Python ignores SIGXFSZ): a real write failure.
    # (The index's schema alone needs more than 300 kB of WAL while it is created.)
    resource.setrlimit(resource.RLIMIT_FSIZE, (450_000, 450_000))


def test_write_failure_mid_dataset_answers_a700_and_keeps_serving(tmp_path: Path) -> None:
    small = make_study(tmp_path / "small", 2, size=64, seed=31)
    big = make_study(tmp_path / "big", 1, size=512, seed=32)  # ~525 kB
    cfg = {"models": {"bundled": False}}
    with NodeProcess(tmp_path / "node", cfg, preexec_fn=_limit_file_size) as proc:
        assert store_file_raw(proc.port, small[0]) == 0x0000
        assert store_file_raw(proc.port, big[0]) == 0xA700  # not an aborted association
        assert store_file_raw(proc.port, small[1]) == 0x0000
        uids = {sop for (sop,) in query(proc.data_dir, "SELECT sop_instance_uid FROM instances")}
        assert uids == {dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in small}
        assert not spooled_data(proc.data_dir / "incoming")
    assert "File too large" in proc.log()


def test_association_aborted_mid_c_store_leaves_nothing(node: NodeProcess, tmp_path: Path) -> None:
    src = make_study(tmp_path / "src", 1, size=512, seed=33)[0]
    ds = dcmread(src)
    ae = AE(ae_title="ABORTER")
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    req = C_STORE()
    req.MessageID = 1
    req.AffectedSOPClassUID = ds.SOPClassUID
    req.AffectedSOPInstanceUID = ds.SOPInstanceUID
    req.Priority = 0
    req.DataSet = BytesIO(encode(ds, False, True))
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    cx_id = assoc.accepted_contexts[0].context_id
    pdus = msg.encode_msg(cx_id, 16384)
    for _ in range(4):  # the command set and the first fragments of the dataset
        assoc.dul.send_pdu(next(pdus))
    wait_until(lambda: spooled_data(node.data_dir / "incoming"), timeout=10)
    assoc.abort()
    wait_until(lambda: not spooled_data(node.data_dir / "incoming"), timeout=10)
    assert (
        query(
            node.data_dir, "SELECT id FROM instances WHERE sop_instance_uid=:u", u=ds.SOPInstanceUID
        )
        == []
    )
    assert echoscu(node.port, "DICOM_NODE").returncode == 0
    assert "ended in the middle of a C-STORE" in node.log()
