"""The Node class in-process with a pynetdicom peer: duplicate policies and index contents."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import select

from dicom_node.index import Group, Instance, queries
from dicom_node.node import Node
from dicom_node.settings.root import validate_config
from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.support.ports import free_port
from tests.support.studies import spooled_data


def _node(tmp_path: Path, policy: str) -> Iterator[Node]:
    cfg = validate_config(
        {
            "data_dir": str(tmp_path / "data"),
            "port": free_port(),
            "bind_address": "127.0.0.1",
            "disk_reserve_mb": 0,
            "duplicate_policy": policy,
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 60}],
        }
    )
    node = Node(cfg)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def keep_node(tmp_path: Path) -> Iterator[Node]:
    yield from _node(tmp_path, "keep_first")


@pytest.fixture
def replace_node(tmp_path: Path) -> Iterator[Node]:
    yield from _node(tmp_path, "replace")


def _send(node: Node, datasets: list) -> list[int]:  # type: ignore[type-arg]
    ae = AE(ae_title="INPROC")
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", node.config.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def _two_versions() -> tuple:  # type: ignore[type-arg]
    """Two versions of one instance: same UIDs, different pixel bytes."""
    first = next(
        iter_ct_series(1, Patient(patient_id="DUP"), rows=64, cols=64, seed=1, study_uid=new_uid())
    )
    second = copy.deepcopy(first)
    second.PixelData = bytes(reversed(first.PixelData))
    return first, second


def test_index_records_key_attributes(keep_node: Node) -> None:
    ds, _ = _two_versions()
    assert _send(keep_node, [ds]) == [0]
    with keep_node.db.session() as s:
        inst = queries.find_instance(s, ds.SOPInstanceUID)
        assert inst is not None
        got = {
            k: getattr(inst, k)
            for k in (
                "patient_id",
                "accession_number",
                "study_date",
                "modality",
                "body_part",
                "series_description",
                "sop_class_uid",
                "rows",
                "columns",
                "number_of_frames",
                "calling_ae",
                "called_ae",
                "peer_address",
                "instance_number",
            )
        }
        group = s.get(Group, inst.group_id)
        assert group is not None and group.state == "open" and group.instance_count == 1
        assert [Path(r.path) for r in queries.instance_rows_of_group(s, group.id)] == [
            Path(inst.path)
        ]
        assert queries.completed_groups(s) == []
    assert got == {
        "patient_id": "DUP",
        "accession_number": ds.AccessionNumber,
        "study_date": ds.StudyDate,
        "modality": "CT",
        "body_part": "CHEST",
        "series_description": ds.SeriesDescription,
        "sop_class_uid": CTImageStorage,
        "rows": 64,
        "columns": 64,
        "number_of_frames": None,
        "calling_ae": "INPROC",
        "called_ae": "DICOM_NODE",
        "peer_address": "127.0.0.1",
        "instance_number": 1,
    }
    assert inst.size == Path(inst.path).stat().st_size
    stored = dcmread(inst.path)
    assert stored.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert not spooled_data(keep_node.store.incoming)  # nothing left in the spool
    # complete_due with a time past the deadline completes it, once.
    from datetime import timedelta

    from dicom_node.index import utcnow

    assert keep_node.assembler.complete_due(utcnow() + timedelta(seconds=61)) == [group.id]
    assert keep_node.assembler.complete_due(utcnow() + timedelta(seconds=62)) == []
    with keep_node.db.session() as s:
        done = s.get(Group, group.id)
        # Completed once, then routed at once by the job layer (no rule fits this CT).
        assert done.completed_at is not None and done.state == "unrouted"
        assert "no rule matched" in (done.route_note or "")


def test_duplicate_keep_first(keep_node: Node) -> None:
    first, second = _two_versions()
    assert _send(keep_node, [first, second]) == [0, 0]
    with keep_node.db.session() as s:
        rows = s.scalars(select(Instance)).all()
        assert len(rows) == 1
        assert dcmread(rows[0].path).PixelData == first.PixelData
        assert s.scalars(select(Group)).one().instance_count == 1


def test_duplicate_replace(replace_node: Node) -> None:
    first, second = _two_versions()
    assert _send(replace_node, [first, second]) == [0, 0]
    with replace_node.db.session() as s:
        rows = s.scalars(select(Instance)).all()
        assert len(rows) == 1
        assert dcmread(rows[0].path).PixelData == second.PixelData
        assert s.scalars(select(Group)).one().instance_count == 1
