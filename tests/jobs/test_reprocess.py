"""`dicom-node studies reprocess STUDY_UID` through the real CLI on a real index: a study
whose job named a mistyped model is routed again once the configuration is fixed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from sqlalchemy import select, update
from typer.testing import CliRunner

from dicom_node.db import Database, utcnow
from dicom_node.delivery.retry import RetryPolicy
from dicom_node.index.tables import Group, Instance
from dicom_node.jobs.models import Job
from dicom_node.jobs.queue import JobQueue, NewJob
from dicom_node.jobs.reprocess import ABANDONED_AFTER, REPROCESSING
from tests.support.groups import add_group

from dicom_node.cli import app  # isort: skip

STUDY = "1.2.3"


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.output


def config(tmp_path: Path, routes: list[dict] | None) -> Path:
    path = tmp_path / "node.yaml"
    data: dict = {"data_dir": str(tmp_path)}
    if routes is not None:
        data["routes"] = routes
    path.write_text(yaml.safe_dump(data))
    return path


def chest(model: str) -> list[dict]:
    return [{"name": "chest", "match": {"modality": "CR"}, "models": [model]}]


def dead_job_with_a_mistyped_model(index: Database, tmp_path: Path) -> tuple[int, int]:
    """A routed group whose job named a model that does not exist and died."""
    gid, uids = add_group(index, tmp_path, state="routed", study=STUDY)
    q = JobQueue(index)
    job = q.enqueue(
        NewJob(
            group_id=gid,
            rule_name="chest",
            action="infer",
            study_uid=STUDY,
            models=["demo-cxr-densenet12"],
            instance_uids=uids,
        )
    )
    q.fail(
        q.claim("w"),
        "model 'demo-cxr-densenet12' is not loaded",
        permanent=True,
        policy=RetryPolicy(),
    )
    return gid, job


def test_reprocess_after_fixing_a_mistyped_model(index: Database, tmp_path: Path) -> None:
    gid, old_job = dead_job_with_a_mistyped_model(index, tmp_path)

    # Still mistyped: refused before anything is queued, naming the route and model.
    code, out = run(
        "studies", "reprocess", STUDY, "-c", str(config(tmp_path, chest("demo-cxr-densenet12")))
    )
    assert code == 2, out
    assert "routes[0].models[0]: unknown model 'demo-cxr-densenet12'" in out

    code, out = run(
        "studies", "reprocess", STUDY, "-c", str(config(tmp_path, chest("demo-cxr-densenet121")))
    )
    assert code == 0, out
    with index.session() as s:
        groups = s.scalars(select(Group).order_by(Group.id)).all()
        jobs = s.scalars(select(Job).order_by(Job.id)).all()
    assert [g.id for g in groups][0] == gid and len(groups) == 2
    new = groups[1]
    assert new.state == "routed" and new.study_uid == STUDY
    assert new.route_note == f"reprocess of group {gid}; rules: chest (infer)"
    assert f"group {new.id} (reprocess of group {gid}): routed" in out
    old, fresh = jobs
    assert (old.id, old.state, old.models) == (old_job, "dead", ["demo-cxr-densenet12"])
    assert (fresh.group_id, fresh.state, fresh.models) == (
        new.id,
        "queued",
        ["demo-cxr-densenet121"],
    )
    assert fresh.instance_uids == old.instance_uids
    assert f"jobs queued: {fresh.id}" in out

    # While that job is pending, a second reprocess is refused.
    code, out = run(
        "studies", "reprocess", STUDY, "-c", str(config(tmp_path, chest("demo-cxr-densenet121")))
    )
    assert code == 1 and f"({fresh.id})" in out and "still queued" in out


def test_reprocess_with_the_default_rules(index: Database, tmp_path: Path) -> None:
    dead_job_with_a_mistyped_model(index, tmp_path)
    with index.session() as s:  # the demo's manifest applies to PA/AP chest images
        s.execute(update(Instance).values(view_position="PA"))
    code, out = run("studies", "reprocess", STUDY, "-c", str(config(tmp_path, None)))
    assert code == 0, out
    with index.session() as s:
        fresh = s.scalars(select(Job).order_by(Job.id.desc())).first()
    assert (fresh.rule_name, fresh.models) == (
        "default:demo-cxr-densenet121",
        ["demo-cxr-densenet121"],
    )


def test_reprocess_refuses_what_it_cannot_do(index: Database, tmp_path: Path) -> None:
    cfg = str(config(tmp_path, chest("demo-cxr-densenet121")))
    code, out = run("studies", "reprocess", "9.9.9", "-c", cfg)
    assert code == 1 and "no stored instance of study 9.9.9" in out
    add_group(index, tmp_path, state="open", study="7.7")
    code, out = run("studies", "reprocess", "7.7", "-c", cfg)
    assert code == 1 and "still being received" in out
    add_group(index, tmp_path, state="routed", study="8.8", modality="CT")
    code, out = run("studies", "reprocess", "8.8", "-c", cfg)
    assert code == 1 and "no job queued" in out
    with index.session() as s:
        ct = s.scalars(
            select(Group).where(Group.study_uid == "8.8").order_by(Group.id.desc())
        ).first()
    assert ct.state == "unrouted" and "modality" in ct.route_note


def test_a_claim_left_by_a_stopped_reprocess(index: Database, tmp_path: Path) -> None:
    """A ``reprocessing`` group is another reprocess's claim on the study: refused while it
    is fresh; one older than ABANDONED_AFTER (its process stopped) is marked unrouted."""
    dead_job_with_a_mistyped_model(index, tmp_path)
    gid, _ = add_group(index, tmp_path, state=REPROCESSING, n=0, study=STUDY)
    cfg = str(config(tmp_path, chest("demo-cxr-densenet121")))
    code, out = run("studies", "reprocess", STUDY, "-c", cfg)
    assert code == 1 and f"being reprocessed (group {gid} is reprocessing)" in out, out
    with index.session() as s:
        s.execute(
            update(Group)
            .where(Group.id == gid)
            .values(completed_at=utcnow() - ABANDONED_AFTER - dt.timedelta(seconds=1))
        )
    code, out = run("studies", "reprocess", STUDY, "-c", cfg)
    assert code == 0, out
    with index.session() as s:
        left = s.get(Group, gid)
        jobs = s.scalars(select(Job.state).order_by(Job.id)).all()
    assert (left.state, left.route_note) == (
        "unrouted",
        "reprocess interrupted before it was routed",
    )
    assert jobs == ["dead", "queued"]
