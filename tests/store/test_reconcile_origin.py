"""Start-up reconciliation takes each lost instance's origin from the record the node
wrote (``dicom_node/store/origin.py``), never from the stored file's File Meta, which a
STOW-RS client writes itself.

As in test_reconcile.py, a power loss is stood in for by kill -9 and deleting the rows.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from dicom_node.store.origin import DIMSE, Origin, OriginRecords
from dicom_node.store.writer import InstanceStore
from dicom_node.synthetic import new_uid
from tests.http.support import multipart, post
from tests.store.reconcile_support import (
    SUMMARY,
    execute_sql,
    instance_rows,
    origin_node,
    reconcile_cli,
    reconciled_metric,
)
from tests.support.dcmtk import storescu
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study

pytestmark = pytest.mark.peer


def _forged(src: Path, study: str, series: str) -> bytes:
    """A new instance of ``study``/``series`` whose File Meta claims it came from MODX to
    BYSERIES (a trusted peer to one of our DIMSE AE titles), as a STOW-RS client may
    write it."""
    ds = pydicom.dcmread(src)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid()
    ds.file_meta.SendingApplicationEntityTitle = "MODX"
    ds.file_meta.ReceivingApplicationEntityTitle = "BYSERIES"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _reindexed_after_losing_every_row(node: NodeProcess, files: int) -> dict[str, dict]:
    """Delete every row and group of the killed ``node``, start it again (it reconciles
    ``files`` files), stop it; return the rows it re-indexed."""
    execute_sql(node.index, ("DELETE FROM instances", {}), ("DELETE FROM groups", {}))
    node = origin_node(node.workdir, port=node.port)
    node.start()
    try:
        after = instance_rows(node.index)
        summary = f"{SUMMARY} {files} file(s) seen, {files} re-indexed, 0 unreadable"
        assert summary in node.log()
    finally:
        assert node.stop() == 0
    return after


def test_stow_file_meta_naming_a_dimse_peer_is_not_trusted(tmp_path: Path) -> None:
    """A STOW-RS client stores instances whose File Meta names MODX -> BYSERIES: one into
    the very series MODX sent by C-STORE, one in a study of its own. After every row is
    lost they are indexed again as the web source's, the C-STOREd ones as MODX's."""
    dimse = make_study(tmp_path / "src", 2, size=64, seed=44)
    first = pydicom.dcmread(dimse[0])
    own = make_study(tmp_path / "own", 1, size=64, seed=45)
    own_ds = pydicom.dcmread(own[0])
    parts = [
        _forged(own[0], first.StudyInstanceUID, first.SeriesInstanceUID),
        _forged(own[0], own_ds.StudyInstanceUID, own_ds.SeriesInstanceUID),
    ]
    node = origin_node(tmp_path / "node")
    node.start()
    try:
        storescu(node.port, dimse, "BYSERIES", "MODX", check=True)
        r = post(node, multipart(parts))
        assert r.status_code == 200, r.text
    finally:
        node.kill()
    before = instance_rows(node.index)
    web = {sop for sop, r in before.items() if r["called_ae"] == "WEBSRC"}
    assert len(web) == 2 and len(before) == 4
    after = _reindexed_after_losing_every_row(node, 4)
    assert sorted(after) == sorted(before)
    for sop, row in sorted(before.items(), key=lambda item: item[0] not in web):
        got = after[sop]
        origin = (got["called_ae"], got["calling_ae"], got["peer_address"])
        expected = ("WEBSRC", "http") if sop in web else ("BYSERIES", "MODX")
        assert origin[:2] == expected, sop
        assert origin == (row["called_ae"], row["calling_ae"], row["peer_address"]), sop
        assert origin[2] == "127.0.0.1"
    # The client's File Meta is kept as sent (WADO-RS serves those very bytes).
    stored = sorted(Path(before[sop]["path"]).read_bytes() for sop in web)
    assert stored == sorted(parts)


def test_origin_record_left_by_a_crash_harms_nothing(tmp_path: Path) -> None:
    """A crash after a DIMSE association's origin record was written, before its first
    instance was placed, leaves a series record naming MODX and no instance. A STOW-RS
    client that then stores into that series (forged File Meta or not) is still the web
    source after its rows are lost; the orphan record itself is never indexed."""
    src = make_study(tmp_path / "src", 1, size=64, seed=47)
    ds = pydicom.dcmread(src[0])
    node = origin_node(tmp_path / "node")
    store = InstanceStore(node.data_dir)
    store.open()
    trusted = Origin(DIMSE, "BYSERIES", "MODX", "127.0.0.1")
    target = store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, new_uid())
    OriginRecords(store).note(target, trusted)  # then the "crash": nothing placed
    assert not target.exists()
    node.start()  # no clean-stop marker: reconciles, and finds no instance
    try:
        assert f"{SUMMARY} 0 file(s) seen, 0 re-indexed" in node.log()
        r = post(node, multipart([_forged(src[0], ds.StudyInstanceUID, ds.SeriesInstanceUID)]))
        assert r.status_code == 200, r.text
    finally:
        node.kill()
    ((sop, before),) = instance_rows(node.index).items()
    got = _reindexed_after_losing_every_row(node, 1)[sop]
    assert (got["called_ae"], got["calling_ae"]) == ("WEBSRC", "http")
    assert (before["called_ae"], before["calling_ae"]) == ("WEBSRC", "http")


def test_a_file_without_origin_record_is_left_and_reported(tmp_path: Path) -> None:
    """A valid instance file with no origin record (what a version before origin records
    left, or a file copied in by hand) is not indexed under a guessed origin: it is left
    in place and reported, with the command that indexes it under an origin the admin
    states."""
    src = make_study(tmp_path / "src", 1, size=64, seed=48)
    ds = pydicom.dcmread(src[0])
    node = origin_node(tmp_path / "node")
    store = InstanceStore(node.data_dir)
    store.open()
    path = store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    path.parent.mkdir(parents=True)
    path.write_bytes(src[0].read_bytes())
    node.start()
    try:
        log = node.log()
        assert f"stored file {path} not indexed: no origin record (origin.json)" in log
        summary = "1 file(s) seen, 0 re-indexed, 0 unreadable, 0 duplicate, 1 without origin"
        assert f"{SUMMARY} {summary}" in log
        assert reconciled_metric(node, "no_origin") == 1
        assert "dicom-node store reconcile --origin-ae AE_TITLE" in log  # what to do
        assert instance_rows(node.index) == {}
    finally:
        assert node.stop() == 0
    assert path.read_bytes() == src[0].read_bytes()
    # The admin states the origin: one of the node's AE titles, the calling AE unknown.
    refused = reconcile_cli(node, "--origin-ae", "NOT_OURS")
    assert refused.returncode == 2 and "not one of the node's AE titles" in refused.stderr
    assert instance_rows(node.index) == {}
    done = reconcile_cli(node, "--origin-ae", "BYSERIES")
    assert done.returncode == 0, done.stderr
    assert "indexed as received on BYSERIES" in done.stdout
    ((row),) = instance_rows(node.index).values()
    assert (row["called_ae"], row["calling_ae"], row["path"]) == ("BYSERIES", "", str(path))
