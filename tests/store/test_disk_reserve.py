"""The disk reserve holds under a burst, on a real small filesystem (issue 12, defect 8),
and a group whose routing failed on a full database is routed once it can be."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.store.support import inconsistencies
from tests.support.dcmtk import storescu, storescu_at_once
from tests.support.dcmtk import storescu_successes as _successes
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study
from tests.support.tmpfs import mounted_tmpfs
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer

MiB = 2**20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs of its own (needs root, as in CI)."""
    with mounted_tmpfs(tmp_path / "fs", "size=48m") as mnt:
        yield mnt


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class _LowWater:
    """The least free space seen on a filesystem while it runs (sampled every 0.2 ms)."""

    def __init__(self, path: Path) -> None:
        self.path, self.low, self._stop = path, _free(path), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.0002):
            self.low = min(self.low, _free(self.path))

    def __enter__(self) -> _LowWater:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_burst_cannot_take_free_space_below_the_reserve(tmp_path: Path, small_fs: Path) -> None:
    reserve_mb = 16
    files = [make_study(tmp_path / f"src{i}", 25, size=512, seed=60 + i) for i in range(4)]
    proc = NodeProcess(
        tmp_path / "node",
        {
            "data_dir": str(small_fs / "data"),
            "disk_reserve_mb": reserve_mb,
            "models": {"bundled": False},
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 60}],
        },
    )
    proc.data_dir = small_fs / "data"
    filler = small_fs / "filler"
    filler.write_bytes(bytes(8 * MiB))
    with proc, _LowWater(small_fs) as water:
        outs = [out for _, out in storescu_at_once(proc.port, files, "-nh", timeout=300)]
        stored = [f for out in outs for f in _successes(out)]
        refused = sum(out.count("Refused: OutOfResources") for out in outs)
        assert stored and refused, outs[0][-2000:]
        assert len(stored) + refused == 100
        assert len(stored) < 99  # the filesystem holds about 45 of them
        # The reserve accounts for instance data; SQLite's WAL grows outside it, up to its
        # autocheckpoint (1000 pages of 4 KiB) and a little past it while a checkpoint
        # waits for readers on a loaded machine. Before the fix free space fell to 0.
        assert water.low >= (reserve_mb - 4) * MiB, f"free space fell to {water.low}"
        for f in stored:
            sop = dcmread(f, stop_before_pixels=True).SOPInstanceUID
            assert query(
                proc.index, "SELECT count(*) FROM instances WHERE sop_instance_uid=:u", u=sop
            ) == [(1,)]
        assert inconsistencies(proc) == []
        # Space comes back (the filler goes): C-STOREs succeed again.
        late = files[0][-1:]
        assert "Refused: OutOfResources" in storescu(proc.port, late).stderr
        filler.unlink()
        r = storescu(proc.port, late)
        assert r.returncode == 0 and "Received Store Response (Success)" in r.stderr, r.stderr[
            -2000:
        ]


def test_group_routed_once_the_database_takes_writes_again(tmp_path: Path) -> None:
    """A group whose routing failed ("database or disk is full", here raised by a real
    SQLite trigger) is not left ``complete`` until a restart."""
    files = make_study(tmp_path / "src", 3, size=32, seed=70)
    with NodeProcess(
        tmp_path / "node",
        {
            "models": {"bundled": False},
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
        },
    ) as proc:
        db = sqlite3.connect(proc.data_dir / "index.sqlite", timeout=30)
        db.execute(
            "CREATE TRIGGER disk_full BEFORE UPDATE OF state ON groups "
            "WHEN NEW.state NOT IN ('open', 'complete') "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        db.commit()
        assert storescu(proc.port, files).returncode == 0
        wait_until(lambda: "database or disk is full" in proc.log(), timeout=30)
        assert query(proc.data_dir, "SELECT state FROM groups") == [("complete",)]
        db.execute("DROP TRIGGER disk_full")
        db.commit()
        db.close()
        wait_until(
            lambda: query(proc.data_dir, "SELECT state FROM groups") != [("complete",)], timeout=60
        )
        assert query(proc.data_dir, "SELECT state FROM groups") == [("unrouted",)]
