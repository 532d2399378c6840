"""The series directory lock (dicom_node/store/series_lock.py) on a real filesystem:
receivers share it, retention gets it alone or not at all, between threads and between
OS processes; a receiver that waited while retention removed the directory makes it
anew. The race with retention's real code is in tests/jobs/test_retention_store.py."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from dicom_node.store.origin import SERIES_RECORD
from dicom_node.store.series_lock import clearing, placing, remove_if_empty
from dicom_node.store.writer import InstanceStore
from tests.support.node_process import ROOT

_PROBE = """
import sys
from pathlib import Path
from dicom_node.store.series_lock import clearing
with clearing(Path(sys.argv[1])) as alone:
    print(alone)
"""


def _clearing_elsewhere(series: Path) -> bool:
    """Whether another OS process gets ``series`` alone."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(series)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT)},
    ).stdout
    return {"True\n": True, "False\n": False}[out]


def _clearing_in_thread(series: Path) -> bool:
    got: list[bool] = []

    def probe() -> None:
        with clearing(series) as alone:
            got.append(alone)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return got[0]


def test_receivers_share_a_series_and_retention_gets_it_only_when_none_holds_it(
    store: InstanceStore,
) -> None:
    series = store.path_for("1.2", "1.2.3", "1").parent
    with placing(store, series):
        assert series.is_dir()
        with placing(store, series):  # another receiver does not wait
            assert not _clearing_in_thread(series)
            assert not _clearing_elsewhere(series)
    assert _clearing_in_thread(series)
    assert _clearing_elsewhere(series)
    with clearing(series) as alone:
        assert alone
        assert not _clearing_elsewhere(series)  # and retention passes take turns


def test_a_receiver_that_waited_for_a_removed_series_makes_it_again(
    store: InstanceStore,
) -> None:
    series = store.path_for("1.2", "1.2.4", "1").parent
    store.ensure_dir(series)
    (series / SERIES_RECORD).write_bytes(b"{}")
    held: list[int] = []  # the inode of the directory the receiver held

    def receive() -> None:
        with placing(store, series):
            held.append(series.stat().st_ino)
            (series / "1.dcm").write_bytes(b"DICM")

    with clearing(series) as alone:
        assert alone
        receiver = threading.Thread(target=receive)
        receiver.start()  # waits for the lock, or finds the directory gone
        assert remove_if_empty(series)
        assert not series.parent.exists()  # the emptied study went too
    receiver.join()
    assert (series / "1.dcm").exists() and held == [series.stat().st_ino]
    assert not (series / SERIES_RECORD).exists()  # the receive path writes the new one


def test_a_series_with_anything_but_origin_records_is_not_removed(
    store: InstanceStore,
) -> None:
    series = store.path_for("1.2", "1.2.5", "1").parent
    store.ensure_dir(series)
    for name in (SERIES_RECORD, "9.origin.json", "notes.txt"):
        (series / name).write_bytes(b"x")
    with clearing(series) as alone:
        assert alone and not remove_if_empty(series)
    assert sorted(p.name for p in series.iterdir()) == ["9.origin.json", "notes.txt", SERIES_RECORD]
    (series / "notes.txt").unlink()
    with clearing(series) as alone:
        assert alone and remove_if_empty(series)
    assert not series.parent.exists()
