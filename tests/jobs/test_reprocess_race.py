"""`dicom-node studies reprocess` from CLI processes and `POST /api/studies/{uid}/reprocess`
on a running node, all at once, on SQLite and PostgreSQL: one set of jobs, the others
refused (exit 1 / 409).

Jobs go to Celery on a real Redis with no worker, so they stay queued: a reprocess that
comes after the first one's jobs have finished is a new, legitimate one, not this race.

The attempts are made to meet in the race window: the test holds a database lock that
stops them mid-way and lets go once every one of them is stopped or finished. On
PostgreSQL it locks the jobs table against writes (reads go on), so an attempt that passed
its checks waits to queue its jobs (seen in pg_stat_activity); on SQLite it holds the write
lock, so every attempt waits at its first write (a CLI process then sleeps in SQLite's busy
handler, seen in /proc).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from dicom_node.db import Database
from tests.jobs.test_reprocess import STUDY, chest, dead_job_with_a_mistyped_model
from tests.support import redis as redis_server
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess
from tests.support.waiting import wait_until

CLI_PROCESSES = 3
NANOSLEEP = {"35", "230"}  # x86-64 nanosleep, clock_nanosleep


def sleeping(pid: int) -> bool:
    """Whether the process is in a sleep syscall (SQLite's busy handler between tries)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] in NANOSLEEP
    except (FileNotFoundError, IndexError, PermissionError):
        return False


def cli(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dicom_node", "studies", "reprocess", STUDY, "-c", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_reprocess_from_cli_and_api_at_once_queues_one_set(index_url: str, tmp_path: Path) -> None:
    if why := redis_server.available():
        pytest.skip(why)
    db = Database(index_url)
    db.create_all()
    try:
        gid, _ = dead_job_with_a_mistyped_model(db, tmp_path)
    finally:
        db.dispose()
    postgres = index_url.startswith("postgresql")
    with (
        redis_server.RedisServer(tmp_path / "redis") as redis,
        NodeProcess(
            tmp_path / "node",
            {
                "database_url": index_url,
                "routes": chest("demo-cxr-densenet121"),
                "jobs": {"executor": "celery", "broker_url": redis.url},
            },
        ) as node,
        ThreadPoolExecutor(1) as pool,
    ):
        url = f"{node.http_url}/api/studies/{STUDY}/reprocess"
        engine = create_engine(index_url)
        try:
            # pg_stat_activity is read once per transaction: watch from another connection.
            with engine.connect() as hold, engine.connect() as watch:
                if postgres:
                    hold.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
                else:  # the raw connection: BEGIN IMMEDIATE takes the write lock now
                    raw = sqlite3.connect(index_url.removeprefix("sqlite:///"), timeout=30)
                    raw.isolation_level = None
                    raw.execute("BEGIN IMMEDIATE")
                api = pool.submit(requests.post, url, timeout=120)
                procs = [cli(node.config_path) for _ in range(CLI_PROCESSES)]

                def waiting_on_insert() -> int:
                    watch.rollback()
                    return watch.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND query LIKE 'INSERT INTO jobs%'"
                        )
                    ).scalar_one()

                def all_stopped_or_done() -> bool:
                    done = api.done() + sum(p.poll() is not None for p in procs)
                    if postgres:
                        return done + waiting_on_insert() == CLI_PROCESSES + 1
                    return all(p.poll() is not None or sleeping(p.pid) for p in procs)

                def activity() -> str:
                    if not postgres:
                        return f"sleeping: {[sleeping(p.pid) for p in procs]}"
                    watch.rollback()
                    rows = watch.execute(
                        text("SELECT state, wait_event_type, query FROM pg_stat_activity")
                    )
                    polls = [p.poll() for p in procs]
                    return f"api {api.done()} cli {polls}\n" + "\n".join(map(str, rows))

                wait_until(all_stopped_or_done, timeout=60, describe=activity)
                if postgres:
                    hold.rollback()
                else:
                    raw.execute("ROLLBACK")
                    raw.close()
            outs = [p.communicate(timeout=60)[0] for p in procs]
            codes = [p.returncode for p in procs]
            answer = api.result()
        finally:
            engine.dispose()

    won = codes.count(0) + (answer.status_code == 202)
    assert won == 1, (codes, outs, answer.status_code, answer.text)
    refused = [o for c, o in zip(codes, outs, strict=True) if c != 0]
    if answer.status_code != 202:
        assert answer.status_code == 409, answer.text
        refused.append(answer.json()["detail"])
    for why in refused:
        assert "being reprocessed" in why or "still queued or running" in why, why
    groups = query(index_url, "SELECT id FROM groups WHERE study_uid = :s ORDER BY id", s=STUDY)
    assert len(groups) == 2 and groups[0] == (gid,), groups
    jobs = query(index_url, "SELECT group_id FROM jobs ORDER BY id")
    assert jobs == [(gid,), groups[1]], jobs
