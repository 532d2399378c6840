"""``dicom-node index refresh`` against retention deleting a series meanwhile, a batch
PostgreSQL aborts in a deadlock, and its ``--dry-run`` and ``--study``.

The rows are written by the receive path's own Recorder into a real store and SQLite
index (no node needed: the command reads the files and the database), then given a
value an earlier version indexed (an ACR-NEMA date cut to ``yyyy.mm.``). Retention is
stood in for by what it does, with its own lock (``series_lock.clearing``): file removed,
then row deleted, while it holds the series alone.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from dicom_node.db import Database, sqlite_url, utcnow
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.store import index_refresh
from dicom_node.store.index_refresh import read_header
from dicom_node.store.series_lock import clearing
from dicom_node.store.writer import InstanceStore
from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.store.reconcile_support import execute_sql
from tests.support import postgres as pg
from tests.support.index import query
from tests.support.node_process import ROOT
from tests.support.waiting import wait_until

# pydicom warns of the ACR-NEMA date these tests write on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CUT = "1994.11."  # what an earlier version indexed of StudyDate 1994.11.05


def _stored(tmp_path: Path, n: int, url: str | None = None) -> tuple[Path, Path | str, list[Path]]:
    """A config, the index (data dir, or ``url``) and ``n`` stored instances of one
    series (StudyDate in the ACR-NEMA form), indexed by the Recorder into a routed
    group, their rows then given the date an earlier version indexed."""
    data = tmp_path / "data"
    store = InstanceStore(data)
    store.open(owner=False)
    db = Database(url or sqlite_url(data / "index.sqlite"))
    db.create_all()
    recorder = Recorder(db, lambda ae: None)
    paths = []
    for ds in iter_ct_series(n, Patient(), rows=16, cols=16, seed=71, study_uid=new_uid()):
        ds.StudyDate = "1994.11.05"
        path = store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        ts = str(ds.file_meta.TransferSyntaxUID)
        receipt = Receipt("DICOM_NODE", "SCU", None, ts, str(path), path.stat().st_size, utcnow())
        recorder.record(read_header(path), receipt)
        paths.append(path)
    recorder.close()
    db.dispose()
    index = url or data
    execute_sql(
        index,
        ("UPDATE groups SET state = 'routed'", {}),
        ("UPDATE instances SET study_date = :cut", {"cut": CUT}),
        ("UPDATE groups SET study_date = :cut", {"cut": CUT}),
    )
    config = tmp_path / "node.yaml"
    cfg = {"data_dir": str(data), "models": {"bundled": False}}
    config.write_text(yaml.safe_dump(cfg | ({"database_url": url} if url else {})))
    return config, index, paths


def _command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dicom_node", "index", "refresh", "-c", str(config), *args]


def _refresh(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(config, *args), cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _dates(data: Path | str) -> list[str]:
    return [r[0] for r in query(data, "SELECT study_date FROM instances ORDER BY id")]


def _waiting_for(directory: Path) -> bool:
    """Whether a process waits for a lock of ``directory`` (a blocked entry of
    /proc/locks names its inode)."""
    ino = os.stat(directory).st_ino
    locks = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and f":{ino} " in line for line in locks)


def test_a_file_retention_deletes_meanwhile_is_not_reported_missing(tmp_path: Path) -> None:
    """Retention holds the series alone and has removed a file, not yet its row: the
    command finds the file missing and waits for the series before it asks for the row
    again, which is gone by then. Missing is reported only for a row still there."""
    config, data, paths = _stored(tmp_path, 2)
    series = paths[0].parent
    with clearing(series) as alone:
        assert alone
        paths[0].unlink()
        proc = subprocess.Popen(
            _command(config), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_until(lambda: _waiting_for(series) or proc.poll() is not None, timeout=60)
            execute_sql(data, ("DELETE FROM instances WHERE path = :p", {"p": str(paths[0])}))
        except BaseException:
            proc.kill()
            raise
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "2 row(s) checked, 1 updated, 0 unchanged, 0 missing" in out, out
    assert "1 gone meanwhile" in out, out
    assert "missing:" not in out, out
    assert _dates(data) == ["19941105"]


def test_dry_run_changes_nothing_and_study_limits_the_rows(tmp_path: Path) -> None:
    config, data, _ = _stored(tmp_path, 2)
    study = query(data, "SELECT DISTINCT study_uid FROM instances")[0][0]

    dry = _refresh(config, "--dry-run", "--study", study)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would change: study_date 2 (rows per column)" in dry.stdout, dry.stdout
    assert "dry run: 2 row(s) checked, 2 updated" in dry.stdout, dry.stdout
    assert _dates(data) == [CUT, CUT]

    other = _refresh(config, "--study", new_uid())
    assert "0 row(s) checked, 0 updated" in other.stdout, other.stdout
    assert _dates(data) == [CUT, CUT]

    done = _refresh(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 row(s) checked, 2 updated" in done.stdout, done.stdout
    assert "1 group(s) updated" in done.stdout, done.stdout
    assert _dates(data) == ["19941105", "19941105"]
    assert query(data, "SELECT study_date FROM groups") == [("19941105",)]


def _waiting_on_a_lock(url: str) -> bool:
    """Whether a session of the database waits for a row lock."""
    sql = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return query(url, sql)[0][0] > 0


def test_a_batch_the_database_aborts_is_done_again(
    tmp_path: Path, postgres: pg.PostgresServer
) -> None:
    """PostgreSQL aborts the command's batch in a deadlock (as with retention deleting
    rows of the batch in another order): the batch is written again, not lost and not
    a traceback. Here the other side holds the batch's second row and then asks for its
    first, which the command holds; the command's session is the one that detects it
    (its deadlock_timeout, 5 s, is the shorter)."""
    url = postgres.create_database()
    config, index, paths = _stored(tmp_path, 2, url)
    ids = [r[0] for r in query(url, "SELECT id FROM instances ORDER BY id")]
    name = url.rsplit("/", 1)[-1]
    execute_sql(url, (f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '5s'", {}))
    engine = create_engine(url)
    try:
        with engine.connect() as other:
            other.execute(text("SET deadlock_timeout = '120s'"))
            touch = text("UPDATE instances SET size = size WHERE id = :id")
            other.execute(touch, {"id": ids[1]})
            proc = subprocess.Popen(
                _command(config, "--batch", "2"),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                wait_until(lambda: _waiting_on_a_lock(url) or proc.poll() is not None, 60)
                assert proc.poll() is None, proc.communicate()
                other.execute(touch, {"id": ids[0]})  # returns once the command's is aborted
                other.commit()
            except BaseException:
                proc.kill()
                raise
    finally:
        engine.dispose()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "2 row(s) checked, 2 updated, 0 unchanged, 0 missing" in out, out
    assert _dates(index) == ["19941105", "19941105"]


def test_a_database_fault_that_would_fail_again_is_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only index (as a full disk or a lost server: the same error every time)
    stops the run at its first try, saying what failed, not that the database aborted
    the batch three times and that another run may do it."""
    config, data, _ = _stored(tmp_path, 2)
    read_only = f"sqlite:///file:{data / 'index.sqlite'}?mode=ro&uri=true"
    db = Database(read_only)
    try:
        with (
            caplog.at_level(logging.INFO, "dicom_node.store.index_refresh"),
            pytest.raises(OperationalError, match="readonly"),
        ):
            index_refresh.refresh(db, InstanceStore(data))
    finally:
        db.dispose()
    assert "trying again" not in caplog.text

    cfg = yaml.safe_load(config.read_text()) | {"database_url": read_only}
    config.write_text(yaml.safe_dump(cfg))
    done = _refresh(config)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "index refresh stopped: the database failed (attempt to write a readonly" in (
        done.stderr
    ), done.stderr
    assert "times" not in done.stderr, done.stderr
    assert _dates(data) == [CUT, CUT]
