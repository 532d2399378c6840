"""kill -9 in the middle of a study: nothing answered Success is lost; the study completes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from tests.support.dcmtk import storescu_at_once, storescu_background
from tests.support.dcmtk import storescu_successes as _successes
from tests.support.index import completed_groups, query
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study, spooled_data, wait_for_stored

pytestmark = pytest.mark.peer


def _config(index_url: str, **config: object) -> dict[str, object]:
    """``config`` with the index on ``index_url`` (SQLite: the node's default file)."""
    return config if index_url.startswith("sqlite") else {**config, "database_url": index_url}


def test_kill_9_mid_study_then_restart(tmp_path: Path, index_url: str) -> None:
    files = make_study(tmp_path / "src", 100, size=256, seed=21)
    proc = NodeProcess(
        tmp_path / "node",
        _config(index_url, ae_titles=[{"ae_title": "DICOM_NODE", "quiet_seconds": 1}]),
    )
    proc.start()
    sender = storescu_background(proc.port, files)
    wait_for_stored(proc.data_dir, 15)
    proc.kill()
    out, _ = sender.communicate(timeout=60)
    succeeded = _successes(out)
    assert 10 <= len(succeeded) < 100, out[-2000:]
    # Restart on the same data directory and index.
    proc.start()
    try:
        sop_of = {f: dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in succeeded}
        for f, sop in sop_of.items():
            rows = query(proc.index, "SELECT path FROM instances WHERE sop_instance_uid=:u", u=sop)
            assert len(rows) == 1, f"{sop} answered Success but not indexed"
            assert dcmread(rows[0][0]).PixelData == dcmread(f).PixelData
        assert not spooled_data(proc.data_dir / "incoming")
        study = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
        groups = completed_groups(proc.index, study, timeout=20)
        ((count,),) = groups
        indexed = query(proc.index, "SELECT count(*) FROM instances")[0][0]
        assert count == indexed >= len(succeeded)
    finally:
        assert proc.stop() == 0


def test_sigterm_lets_the_running_association_finish(tmp_path: Path) -> None:
    files = make_study(tmp_path / "src", 100, size=256, seed=22)
    proc = NodeProcess(tmp_path / "node")
    proc.start()
    sender = storescu_background(proc.port, files)
    wait_for_stored(proc.data_dir, 5)
    assert proc.stop() == 0
    out, _ = sender.communicate(timeout=60)
    assert sender.returncode == 0, out[-2000:]
    assert len(_successes(out)) == 100
    log = proc.log()
    # The signal came while the association was running, which then finished.
    assert log.index("SIGTERM received") < log.index("association from STORESCU closed")
    assert "node stopped" in log
    assert query(proc.data_dir, "SELECT count(*) FROM instances") == [(100,)]


def test_concurrent_senders_of_one_study_make_one_group(tmp_path: Path, index_url: str) -> None:
    files = make_study(tmp_path / "src", 60, seed=23)
    with NodeProcess(
        tmp_path / "node",
        _config(index_url, ae_titles=[{"ae_title": "DICOM_NODE", "quiet_seconds": 1}]),
    ) as proc:
        for returncode, out in storescu_at_once(proc.port, [files[i::3] for i in range(3)]):
            assert returncode == 0, out[-2000:]
        study = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
        groups = completed_groups(proc.index, study, timeout=20)
        assert groups == [(60,)]
        assert query(proc.index, "SELECT count(*) FROM groups") == [(1,)]
