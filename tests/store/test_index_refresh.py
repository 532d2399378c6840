"""``dicom-node index refresh``: rows indexed by an earlier version, before a fix of the
header's values, get the values a receive indexes now, from their files, while the node
runs; on SQLite and PostgreSQL.

The earlier versions cannot run here, so their rows are stood in for: real files are
received by a real node (storescu; STOW-RS for a retired SOP class), and their rows are
then given, straight in the database, the values those versions indexed (the only thing
faked): ACR-NEMA dates cut to ``yyyy.mm.``, times as ``hh:mm:ss``, IDs clipped to their
column, several values as Python's list text, series dates NULL (rows from before
migration 0005). The groups carry the same values, as the recorder copied them from the
instances.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file

from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.http.support import multipart, post
from tests.store.reconcile_support import execute_sql, instance_rows, reconcile_config
from tests.support.dcmtk import storescu
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess
from tests.support.waiting import wait_until

# pydicom warns of the invalid values these tests write on purpose (a 70-character LO).
pytestmark = [pytest.mark.peer, pytest.mark.filterwarnings("ignore::UserWarning")]

LONG_ID = "P" * 70  # over PatientID's column of 64: left out now, clipped before
SERIES_NULL = {"series_date": None, "series_time": None, "pps_start_date": None}


def _slices(folder: Path, n: int, seed: int, **values: object) -> list[Path]:
    """``n`` small CT slices of a fresh study, each with ``values`` set, written out."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    study = new_uid()
    for i, ds in enumerate(
        iter_ct_series(n, Patient(), rows=16, cols=16, seed=seed, study_uid=study)
    ):
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        path = folder / f"{seed}-{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def _refresh(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", "index", "refresh", "-c", str(node.config_path)]
        + list(args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _qido(node: NodeProcess, level: str, **params: str) -> list[str]:
    """The UIDs (Study, or Series) that a QIDO-RS search at ``level`` answers."""
    r = requests.get(f"{node.http_url}/dicomweb/{level}", params=params, timeout=30)
    assert r.status_code in (200, 204), r.text
    tag = "0020000D" if level == "studies" else "0020000E"
    return sorted(m[tag]["Value"][0] for m in (r.json() if r.status_code == 200 else []))


def _groups(index: Path | str) -> dict[int, tuple]:
    rows = query(
        index,
        "SELECT id, state, patient_id, patient_name, accession_number, study_date, "
        "modalities FROM groups",
    )
    return {r[0]: r[1:] for r in rows}


def _sop(file: Path) -> str:
    return str(pydicom.dcmread(file, stop_before_pixels=True).SOPInstanceUID)


def _old_rows(index: Path | str, by_sop: dict[str, dict], files: dict[str, Path]) -> None:
    """Give the rows of ``files`` the values an earlier version indexed (and their
    groups what it copied from them)."""
    acr, long_a, long_b, missing, garbage, received = (
        by_sop[_sop(files[k])]
        for k in ("acr", "long_a", "long_b", "missing", "garbage", "received")
    )
    execute_sql(
        index,
        ("UPDATE instances SET series_date = NULL, series_time = NULL, pps_start_date = NULL", {}),
        (
            "UPDATE instances SET study_date = '1994.11.', study_time = '11:20:00' "
            "WHERE sop_instance_uid = :sop",
            {"sop": acr["sop_instance_uid"]},
        ),
        ("UPDATE groups SET study_date = '1994.11.' WHERE id = :g", {"g": acr["group_id"]}),
        (
            "UPDATE instances SET patient_id = :clipped, image_type = :listed "
            "WHERE sop_instance_uid IN (:a, :b)",
            {
                "clipped": LONG_ID[:64],
                "listed": "['ORIGINAL', 'PRIMARY', 'AXIAL']",
                "a": long_a["sop_instance_uid"],
                "b": long_b["sop_instance_uid"],
            },
        ),
        (
            "UPDATE instances SET modality = :listed WHERE sop_instance_uid = :sop",
            {"listed": "['CT', 'PT']", "sop": long_b["sop_instance_uid"]},
        ),
        (
            "UPDATE groups SET patient_id = :clipped, modalities = :mods WHERE id = :g",
            {"clipped": LONG_ID[:64], "mods": "CT\\['CT', 'PT']", "g": long_a["group_id"]},
        ),
        *[
            (
                "UPDATE instances SET study_date = '1900.01.' WHERE sop_instance_uid = :sop",
                {"sop": row["sop_instance_uid"]},
            )
            for row in (missing, garbage, received)
        ],
    )


def test_refresh_gives_old_rows_what_a_receive_indexes_now(tmp_path: Path, index_url: str) -> None:
    acr = get_testdata_file("color-pl.dcm")  # StudyDate 1994.11.05, StudyTime 11:20:00
    assert acr is not None
    long_ids = _slices(
        tmp_path / "long",
        2,
        seed=61,
        PatientID=LONG_ID,
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        SeriesDate="20200102",
        SeriesTime="101010",
    )
    # The second one of another series, whose Modality holds two values (invalid).
    ds = pydicom.dcmread(long_ids[1])
    ds.SeriesInstanceUID, ds.Modality = new_uid(), ["CT", "PT"]
    ds.save_as(long_ids[1], enforce_file_format=True)
    broken = _slices(tmp_path / "broken", 2, seed=62)
    received = _slices(tmp_path / "received", 1, seed=63)
    files = {
        "acr": Path(acr),
        "long_a": long_ids[0],
        "long_b": long_ids[1],
        "missing": broken[0],
        "garbage": broken[1],
        "received": received[0],
    }
    titles = [
        {"ae_title": "DICOM_NODE", "quiet_seconds": 1},
        {"ae_title": "SLOW", "quiet_seconds": 600},  # its group stays open: being received
    ]
    web = {"web_source": {"ae_title": "WEBSRC", "quiet_seconds": 1}}
    node = NodeProcess(
        tmp_path / "node", reconcile_config(index_url, 1, ae_titles=titles, http=web)
    )
    node.start()
    try:
        # US Image Storage (retired): storescu does not propose it; STOW-RS takes it.
        r = post(node, multipart([Path(acr).read_bytes()]))
        assert r.status_code == 200, r.text
        storescu(node.port, [*long_ids, *broken], check=True)
        storescu(node.port, received, "SLOW", check=True)
        wait_until(
            lambda: (
                query(node.index, "SELECT count(*) FROM groups WHERE state = 'unrouted'") == [(3,)]
            ),
            timeout=30,
        )
        fresh, fresh_groups = instance_rows(node.index), _groups(node.index)
        assert len(fresh) == 6 and fresh_groups
        assert _qido(node, "studies", StudyDate="19941101-19941130")  # found when fresh
        _old_rows(node.index, fresh, files)
        stale = instance_rows(node.index)
        gone_sop, bad_sop = _sop(files["missing"]), _sop(files["garbage"])
        gone, bad = fresh[gone_sop]["path"], fresh[bad_sop]["path"]
        Path(gone).unlink()
        Path(bad).write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
        acr_study = pydicom.dcmread(acr, stop_before_pixels=True).StudyInstanceUID
        first = pydicom.dcmread(long_ids[0], stop_before_pixels=True)
        long_study = first.StudyInstanceUID
        long_series = sorted(
            pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in long_ids
        )
        # What the earlier version's rows answer: the test can fail.
        assert _qido(node, "studies", StudyDate="19941101-19941130") == []
        assert _qido(node, "studies", StudyTime="112000") == []
        assert _qido(node, "series", SeriesDate="20200102") == []
        assert _qido(node, "studies", PatientID=LONG_ID[:64]) == [long_study]

        done = _refresh(node)  # while the node runs
        assert done.returncode == 1, done.stdout + done.stderr  # two rows not refreshed
        out = done.stdout
        assert f"missing: {gone}" in out, out + done.stderr
        assert f"unreadable: {bad}" in out, out
        assert (
            "6 row(s) checked, 3 updated, 0 unchanged, 1 missing, 1 unreadable, "
            "0 mismatched, 1 left (group being received)"
        ) in out, out
        assert "2 group(s) updated" in out, out

        assert _qido(node, "studies", StudyDate="19941101-19941130") == [acr_study]
        assert _qido(node, "studies", StudyTime="112000") == [acr_study]
        assert _qido(node, "series", SeriesDate="20200102") == long_series
        assert _qido(node, "studies", PatientID=LONG_ID[:64]) == []
        after = instance_rows(node.index)
        for sop, row in after.items():
            if sop in (gone_sop, bad_sop):
                assert row == stale[sop]  # not refreshed: reported
            elif row["called_ae"] == "SLOW":
                assert row == stale[sop]  # its group is being received: left for later
                assert row["study_date"] == "1900.01."
            else:
                assert row == fresh[sop], sop  # what a receive indexes now
        groups = _groups(node.index)
        slow = next(g for g, v in groups.items() if v[0] == "open")
        assert {g: v for g, v in groups.items() if g != slow} == {
            g: v for g, v in fresh_groups.items() if g != slow
        }

        again = _refresh(node)  # idempotent: nothing left to change
        assert "6 row(s) checked, 0 updated, 3 unchanged" in again.stdout, again.stdout
        assert "0 group(s) updated" in again.stdout, again.stdout
        assert instance_rows(node.index) == after
        assert _groups(node.index) == groups
    finally:
        assert node.stop() == 0, node.log()
