"""Retention deletes what is old, and never what a pending job or routing still needs
(on a SQLite file and on a real PostgreSQL server)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dicom_node.db import Database, utcnow
from dicom_node.index.tables import Instance
from dicom_node.jobs.models import Job, JobOutput
from dicom_node.jobs.queue import JobQueue, NewJob
from dicom_node.jobs.retention import Retention
from dicom_node.settings.jobs import RetentionSettings
from dicom_node.store.origin import instance_record
from dicom_node.store.writer import InstanceStore
from tests.support.groups import add_group


@pytest.fixture()
def index(index_url: str) -> Iterator[Database]:
    db = Database(index_url)
    db.create_all()
    yield db
    db.dispose()


def _retention(db: Database) -> Retention:
    return Retention(db, lambda: RetentionSettings(instances_days=30, jobs_days=90))


def _present(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Instance.sop_instance_uid)))


def test_old_instances_go_unless_a_pending_job_or_routing_needs_them(
    index: Database, tmp_path: Path
) -> None:
    _, routed_old = add_group(index, tmp_path, state="routed", age_days=40, study="1.1")
    _, pending_old = add_group(index, tmp_path, state="routed", age_days=40, study="1.2")
    _, unrouted_yet = add_group(index, tmp_path, state="complete", age_days=40, study="1.3")
    _, recent = add_group(index, tmp_path, state="routed", age_days=1, study="1.4")
    # Instances of another origin than their series' first have an origin record each.
    records = [instance_record(tmp_path / f"{u}.dcm") for u in routed_old + pending_old]
    for r in records:
        r.write_bytes(b"{}")
    q = JobQueue(index)
    q.enqueue(
        NewJob(
            group_id=2, rule_name="r", action="infer", study_uid="1.2", instance_uids=pending_old
        )
    )
    report = _retention(index).run_once()
    assert report.instances == 2
    assert _present(index) == set(pending_old + unrouted_yet + recent)
    assert not any(Path(tmp_path / f"{u}.dcm").exists() for u in routed_old)
    assert all(Path(tmp_path / f"{u}.dcm").exists() for u in pending_old)
    assert [r.exists() for r in records] == [False] * len(routed_old) + [True] * len(pending_old)


def test_finished_jobs_and_their_results_go_after_jobs_days(
    index: Database, tmp_path: Path
) -> None:
    gid, uids = add_group(index, tmp_path, state="routed")
    q = JobQueue(index)
    old = q.enqueue(
        NewJob(group_id=gid, rule_name="old", action="infer", study_uid="1.2.3", instance_uids=uids)
    )
    live = q.enqueue(
        NewJob(
            group_id=gid, rule_name="live", action="infer", study_uid="1.2.3", instance_uids=uids
        )
    )
    sr = tmp_path / "sr.dcm"
    sr.write_bytes(b"sr")
    with index.session() as s:
        s.add(
            JobOutput(
                job_id=old, kind="sr", sop_class_uid="1.2", sop_instance_uid="9.9", path=str(sr)
            )
        )
        s.execute(
            update(Job)
            .where(Job.id == old)
            .values(state="done", finished_at=utcnow() - dt.timedelta(days=100))
        )
    report = _retention(index).run_once()
    assert (report.jobs, report.results) == (1, 1) and not sr.exists()
    with index.session() as s:
        assert list(s.scalars(select(Job.id))) == [live]


def test_retained_results_leave_no_emptied_directory_and_keep_the_others(
    index: Database, tmp_path: Path
) -> None:
    """``results/{study}/{series}/``: the directories that retention's deletions emptied
    go (an emptied study too); those still holding a result of a live job, an empty one
    it deleted nothing from, and ``results/`` itself stay."""
    store = InstanceStore(tmp_path / "data")
    store.open()
    try:
        gid, uids = add_group(index, tmp_path, state="routed")
        q = JobQueue(index)
        jobs = {
            name: q.enqueue(
                NewJob(
                    group_id=gid,
                    rule_name=name,
                    action="infer",
                    study_uid="1.2.3",
                    instance_uids=uids,
                )
            )
            for name in ("old", "older", "live")
        }
        results = store.root / "results"
        placed = {  # job -> its results
            "old": ["1.2.3/5.1/1.dcm", "1.2.3/5.1/2.dcm", "1.2.3/5.9/3.dcm", "1.7/5.7/4.dcm"],
            "older": ["1.2.3/5.2/5.dcm"],
            "live": ["1.2.3/5.3/6.dcm", "1.2.3/5.9/7.dcm"],
        }
        with index.session() as s:
            for name, paths in placed.items():
                for rel in paths:
                    store.write(results / rel, [b"result"])
                    s.add(
                        JobOutput(
                            job_id=jobs[name],
                            kind="sr",
                            sop_class_uid="1.2",
                            sop_instance_uid=Path(rel).stem,
                            path=str(results / rel),
                        )
                    )
            s.execute(
                update(Job)
                .where(Job.id.in_([jobs["old"], jobs["older"]]))
                .values(state="done", finished_at=utcnow() - dt.timedelta(days=100))
            )
        (results / "1.8").mkdir()  # empty, but not emptied by retention

        report = Retention(index, lambda: RetentionSettings(jobs_days=90), store=store).run_once()

        assert (report.jobs, report.results) == (2, 5)
        left = sorted(p.relative_to(results).as_posix() for p in results.rglob("*"))
        assert left == [
            "1.2.3",
            "1.2.3/5.3",
            "1.2.3/5.3/6.dcm",
            "1.2.3/5.9",
            "1.2.3/5.9/7.dcm",
            "1.8",
        ]
    finally:
        store.close()
