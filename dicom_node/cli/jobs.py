"""``dicom-node jobs list|show|retry|cancel``: what happened to every study's jobs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree
from sqlalchemy import func, select

from dicom_node.cli.common import CONFIG_OPT, DATA_DIR_OPT, load_node_config, open_database
from dicom_node.jobs.models import (
    ATTEMPT_INTERRUPTED,
    ATTEMPT_STARTED,
    STAGE_TIMES,
    DeliveryAttempt,
    DeliveryResponse,
    Job,
    JobOutput,
    JobState,
    WorkerRecord,
)
from dicom_node.jobs.queue import JobQueue
from dicom_node.jobs.workers import live_workers, missing_models

app = typer.Typer(no_args_is_help=True, help="List, inspect, retry and cancel jobs.")
console = Console()

_STATE_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "delivering": "yellow",
    "failed": "magenta",
    "done": "green",
    "dead": "bold red",
    "cancelled": "dim",
}


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, '')}]{state}[/]"


@app.command("list")
def list_jobs(
    state: list[str] = typer.Option(
        [], "--state", "-s", help="Only these states (repeatable), e.g. -s dead."
    ),
    limit: int = typer.Option(50, help="Newest N jobs."),
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
) -> None:
    """Newest jobs first, with their state, attempts and last error."""
    bad = [s for s in state if s not in {m.value for m in JobState}]
    if bad:
        console.print(
            f"[red]unknown state {bad[0]!r}[/red]; one of: " + ", ".join(m.value for m in JobState)
        )
        raise typer.Exit(2)
    db = open_database(config, data_dir)
    with db.session() as s:
        q = select(Job).order_by(Job.id.desc()).limit(limit)
        if state:
            q = q.where(Job.state.in_(state))
        jobs = s.scalars(q).all()
        counts = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    table = Table(title="jobs  " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    for col in ("id", "study", "rule", "action", "state", "attempts", "created", "error"):
        table.add_column(col, overflow="fold")
    for j in jobs:
        table.add_row(
            str(j.id),
            j.study_uid,
            j.rule_name,
            j.action,
            _state(j.state),
            str(j.attempts),
            _when(j.created_at),
            (j.error or "")[:80],
        )
    console.print(table)


@app.command("show")
def show_job(
    job_id: int, config: Path | None = CONFIG_OPT, data_dir: Path | None = DATA_DIR_OPT
) -> None:
    """One job: its stages, the worker holding it, outputs and every delivery attempt."""
    cfg = load_node_config(config, data_dir)
    lease = dt.timedelta(seconds=cfg.jobs.lease_seconds)
    db = open_database(config, data_dir)
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            console.print(f"[red]no job {job_id}[/red]")
            raise typer.Exit(1)
        outputs = s.scalars(select(JobOutput).where(JobOutput.job_id == job_id)).all()
        attempts = s.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.job_id == job_id)
            .order_by(DeliveryAttempt.id)
        ).all()
        accepted = dict(
            s.execute(
                select(DeliveryResponse.attempt_id, func.count())
                .join(DeliveryAttempt, DeliveryAttempt.id == DeliveryResponse.attempt_id)
                .where(DeliveryAttempt.job_id == job_id, DeliveryResponse.outcome == "delivered")
                .group_by(DeliveryResponse.attempt_id)
            ).all()
        )
        holder = s.get(WorkerRecord, job.claimed_by) if job.claimed_by else None
        waiting_for: list[str] = []
        if cfg.jobs.executor == "celery" and job.state == JobState.QUEUED:
            waiting_for = missing_models(job.models, live_workers(s, lease))
    tree = Tree(f"job {job.id}  {_state(job.state)}  study {job.study_uid}")
    tree.add(
        f"rule {job.rule_name} ({job.action}), priority "
        f"{'stat' if job.priority == 0 else 'routine'}, attempts "
        f"{job.attempts}"
    )
    if job.models:
        tree.add("models: " + ", ".join(job.models))
    tree.add("destinations: " + (", ".join(job.destinations) or "(none: results kept here)"))
    tree.add(f"inputs: {len(job.instance_uids)} instance(s)")
    stages = tree.add("stages")
    for name in STAGE_TIMES:
        stages.add(f"{name.removesuffix('_at'):>10}  {_when(getattr(job, name))}")
    if job.next_attempt_at and job.state == JobState.FAILED:
        tree.add(f"next attempt at {_when(job.next_attempt_at)}")
    if job.claimed_by:
        tree.add(_holder_line(job, holder))
    if job.error:
        tree.add(f"[red]error:[/red] {job.error}")
    if waiting_for:
        tree.add(
            f"[magenta]waiting:[/] no live worker has model(s) {', '.join(waiting_for)}"
            " (see `dicom-node workers list`)"
        )
    outs = tree.add(f"outputs ({len(outputs)})")
    for o in outputs:
        outs.add(f"{o.kind:8} {o.sop_instance_uid}  {o.path}")
    atts = tree.add(f"delivery attempts ({len(attempts)})")
    live = job.state in (JobState.RUNNING, JobState.DELIVERING)
    for a in attempts:
        atts.add(_attempt_line(a, accepted.get(a.id, 0), live))
    console.print(tree)


def _holder_line(job: Job, holder: WorkerRecord | None) -> str:
    """Who holds the job and when it last reported."""
    line = f"held by {job.claimed_by}, job heartbeat {_when(job.heartbeat_at)}"
    if holder is not None:
        line += (
            f" (worker on {holder.host}, models {', '.join(holder.models or []) or '-'}"
            f", last seen {_when(holder.last_seen)})"
        )
    return line


def _attempt_line(a: DeliveryAttempt, accepted: int, job_live: bool) -> str:
    """One attempt: when, where, outcome, accepted/total, end time, error."""
    outcome, total = a.outcome, a.sent
    if a.finished_at is None:  # under way, or the node stopped during it
        total = a.planned
        if outcome == ATTEMPT_STARTED and not job_live:
            outcome = ATTEMPT_INTERRUPTED  # marked so when the job is delivered again
    style = {"delivered": "green", ATTEMPT_STARTED: "yellow", ATTEMPT_INTERRUPTED: "magenta"}.get(
        outcome, "red"
    )
    shown = "in progress" if outcome == ATTEMPT_STARTED else outcome
    return (
        f"{_when(a.started_at)}  {a.destination}: [{style}]{shown}[/] {accepted}/{total} "
        f"accepted, finished {_when(a.finished_at)}" + (f"  {a.error}" if a.error else "")
    )


@app.command("retry")
def retry_job(
    job_id: int, config: Path | None = CONFIG_OPT, data_dir: Path | None = DATA_DIR_OPT
) -> None:
    """Queue a dead, failed or cancelled job again (attempts start over)."""
    if not JobQueue(open_database(config, data_dir)).retry(job_id):
        console.print(f"[red]job {job_id} is not dead, failed or cancelled[/red]")
        raise typer.Exit(1)
    console.print(f"job {job_id} queued again; a running node picks it up")


@app.command("cancel")
def cancel_job(
    job_id: int, config: Path | None = CONFIG_OPT, data_dir: Path | None = DATA_DIR_OPT
) -> None:
    """Cancel a job that has not finished; a worker holding it stops before delivering."""
    if not JobQueue(open_database(config, data_dir)).cancel(job_id):
        console.print(f"[red]job {job_id} has already finished (or does not exist)[/red]")
        raise typer.Exit(1)
    console.print(f"job {job_id} cancelled")
