"""`dicom-node jobs list|show|retry|cancel` on a real index."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dicom_node.db import Database
from dicom_node.delivery.retry import RetryPolicy
from dicom_node.jobs.queue import JobQueue, NewJob
from tests.support.groups import add_group

from dicom_node.cli import app  # isort: skip


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.output


def test_list_show_retry_cancel(index: Database, tmp_path: Path) -> None:
    gid, uids = add_group(index, tmp_path, state="routed")
    q = JobQueue(index)
    dead = q.enqueue(
        NewJob(
            group_id=gid,
            rule_name="cxr",
            action="infer",
            study_uid="1.2.3",
            models=["m"],
            destinations=["pacs"],
            instance_uids=uids,
        )
    )
    q.fail(q.claim("w"), "association rejected by PACS", permanent=True, policy=RetryPolicy())
    queued = q.enqueue(
        NewJob(
            group_id=gid,
            rule_name="fwd",
            action="forward",
            study_uid="1.2.3",
            destinations=["vna"],
            instance_uids=uids,
        )
    )
    d = ["--data-dir", str(tmp_path)]

    code, out = run("jobs", "list", *d)
    assert code == 0 and "dead: 1" in out and "queued: 1" in out
    code, out = run("jobs", "list", "-s", "dead", *d)
    assert code == 0 and "cxr" in out and "fwd" not in out
    code, out = run("jobs", "list", "-s", "nonsense", *d)
    assert code == 2 and "unknown state" in out

    code, out = run("jobs", "show", str(dead), *d)
    assert code == 0 and "association rejected by PACS" in out and "pacs" in out
    assert run("jobs", "show", "999", *d)[0] == 1

    assert run("jobs", "retry", str(queued), *d)[0] == 1  # not dead/failed
    assert run("jobs", "retry", str(dead), *d)[0] == 0
    assert q.claim("w").job_id == dead
    assert run("jobs", "cancel", str(queued), *d)[0] == 0
    assert run("jobs", "cancel", str(queued), *d)[0] == 1  # already finished
    assert q.claim("w") is None


def test_no_index_yet_is_a_clear_error(tmp_path: Path) -> None:
    code, out = run("jobs", "list", "--data-dir", str(tmp_path / "empty"))
    assert code == 1 and "nothing received yet" in out
