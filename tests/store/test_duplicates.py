"""Duplicates under concurrency (issue 12, defect 1): the same SOP Instance UID on several
associations at once follows the configured policy, answers Success, and never costs
the file of the instance that was indexed."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.store.support import inconsistencies, node_config, race, race_two_nodes
from tests.support.dcmtk import storescu_at_once
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study

pytestmark = pytest.mark.peer

RACES = 12  # two-association races on one UID per policy and database (--long: 100)


@pytest.fixture
def races(request: pytest.FixtureRequest) -> int:
    return 100 if request.config.getoption("--long", default=False) else RACES


def test_three_storescu_send_one_study_at_once(tmp_path: Path, index_url: str) -> None:
    files = make_study(tmp_path / "src", 40, size=64, seed=41)
    with NodeProcess(
        tmp_path / "node",
        node_config(index_url, ae_titles=[{"ae_title": "DICOM_NODE", "quiet_seconds": 30}]),
    ) as proc:
        for returncode, out in storescu_at_once(proc.port, [files] * 3):
            assert returncode == 0, out[-2000:]
            assert len(re.findall(r"Received Store Response \(Success\)", out)) == 40, out[-3000:]
        assert inconsistencies(proc) == []
        assert query(proc.index, "SELECT count(*) FROM instances") == [(40,)]
        # Duplicates under keep_first touch no group: one group of 40 instances.
        assert query(proc.index, "SELECT instance_count FROM groups") == [(40,)]


def _versions(n: int, seed: int) -> list:  # type: ignore[type-arg]
    """``n`` versions of one new instance: same UIDs, different pixel bytes."""
    first = next(
        iter_ct_series(
            1, Patient(patient_id="RACE"), rows=32, cols=32, seed=seed, study_uid=new_uid()
        )
    )
    out = [first]
    for i in range(1, n):
        other = copy.deepcopy(first)
        pixels = bytearray(other.PixelData)
        pixels[0] = (pixels[0] + i) % 256
        other.PixelData = bytes(pixels)
        out.append(other)
    return out


def _stored(proc: NodeProcess, sop_uid: str) -> Path:
    """The file of the one index row of ``sop_uid``."""
    rows = query(proc.index, "SELECT path FROM instances WHERE sop_instance_uid=:u", u=sop_uid)
    assert len(rows) == 1, rows
    return Path(rows[0][0])


@pytest.mark.parametrize("policy", ["keep_first", "replace"])
def test_two_associations_race_on_one_uid(
    tmp_path: Path, index_url: str, policy: str, races: int
) -> None:
    """Two versions of a new instance at once; and two new versions at once of an
    instance already stored: keep_first keeps the stored file's bytes, replace takes
    one of the two, whole, never the stored one; one index row each time."""
    with NodeProcess(
        tmp_path / "node",
        node_config(
            index_url,
            duplicate_policy=policy,
            ae_titles=[{"ae_title": "DICOM_NODE", "quiet_seconds": 30}],
        ),
    ) as proc:
        for i in range(races):
            versions = _versions(2, seed=100 + i)
            assert race(proc.port, versions, ExplicitVRLittleEndian) == [0, 0], i
            stored = dcmread(_stored(proc, versions[0].SOPInstanceUID)).PixelData
            # The file is one of the two versions, whole (not a mix, not gone).
            assert stored in (versions[0].PixelData, versions[1].PixelData), i
            assert inconsistencies(proc) == [], i

            v0, v1, v2 = _versions(3, seed=300 + i)
            assert race(proc.port, [v0], ExplicitVRLittleEndian) == [0], i
            first = _stored(proc, v0.SOPInstanceUID).read_bytes()
            assert race(proc.port, [v1, v2], ExplicitVRLittleEndian) == [0, 0], i
            path = _stored(proc, v0.SOPInstanceUID)
            if policy == "keep_first":
                assert path.read_bytes() == first, i
            else:
                assert dcmread(path).PixelData in (v1.PixelData, v2.PixelData), i
            assert inconsistencies(proc) == [], i
        assert query(proc.index, "SELECT count(*) FROM instances") == [(2 * races,)]
        assert "0xA700" not in proc.log() and "indexing failed" not in proc.log()


def test_two_node_processes_on_one_database_race_on_one_uid(
    tmp_path: Path, index_url: str, races: int
) -> None:
    """Across processes only the database's unique key decides: the loser's INSERT fails
    with the driver's IntegrityError and it answers the duplicate Success, removing only
    its own file."""
    cfg = {
        "database_url": index_url,
        "models": {"bundled": False},
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 30}],
    }
    with NodeProcess(tmp_path / "a", cfg) as a, NodeProcess(tmp_path / "b", cfg) as b:
        for i in range(races):
            versions = _versions(2, seed=200 + i)
            statuses = race_two_nodes([a.port, b.port], versions)
            assert statuses == [0, 0], i
            ((path,),) = query(
                index_url,
                "SELECT path FROM instances WHERE sop_instance_uid=:u",
                u=versions[0].SOPInstanceUID,
            )
            assert dcmread(path).PixelData in (versions[0].PixelData, versions[1].PixelData)
        rows = {Path(p) for (p,) in query(index_url, "SELECT path FROM instances")}
        assert len(rows) == races and all(p.is_file() for p in rows)
        files = set()
        for proc in (a, b):
            files |= set((proc.data_dir / "instances").rglob("*.dcm"))
        assert files == rows
        assert "indexing failed" not in a.log() + b.log()
