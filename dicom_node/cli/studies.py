"""``dicom-node studies``: what the node received and how far each group got."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dicom_node.cli.common import CONFIG_OPT, DATA_DIR_OPT, open_database
from dicom_node.index.tables import GroupState

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
    state: GroupState | None = typer.Option(None, "--state", help="Only groups in this state."),
    limit: int = typer.Option(50, "--limit", "-n", help="Most recent N groups."),
) -> None:
    """List received study/series groups, most recent first, with how routing went."""
    from dicom_node.index import queries

    db = open_database(config, data_dir)
    try:
        with db.session() as s:
            groups = queries.list_groups(s, state, limit)
    finally:
        db.dispose()
    table = Table(title=f"groups in {db.describe()}")
    for col in (
        "id",
        "study",
        "patient",
        "modality",
        "instances",
        "state",
        "AE",
        "received (UTC)",
        "routing",
    ):
        table.add_column(col)
    for g in groups:
        table.add_row(
            str(g.id),
            g.study_uid + (f"\n series {g.series_uid}" if g.series_uid else ""),
            g.patient_id or "",
            g.modalities,
            str(g.instance_count),
            g.state,
            f"{g.calling_ae}->{g.called_ae}",
            f"{g.first_received:%Y-%m-%d %H:%M:%S} .. {g.last_received:%H:%M:%S}",
            (g.route_note or "")[:120],
        )
    Console(width=200).print(table)


@app.command("reprocess")
def reprocess(
    study_uid: str = typer.Argument(..., help="Study Instance UID of a stored study."),
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
) -> None:
    """Route a stored study again under the current configuration and queue new jobs.

    For a study whose jobs ran with a configuration since corrected (e.g. a mistyped
    model name): the current routes decide again, and a running node picks the new
    jobs up. Results keep their deterministic UIDs, so they replace the earlier ones.
    """
    from dicom_node.cli.common import load_node_config
    from dicom_node.jobs.queue import JobQueue
    from dicom_node.jobs.reprocess import ReprocessError, reprocess_study
    from dicom_node.jobs.service import default_rules
    from dicom_node.model_registry import model_manifests
    from dicom_node.routing.groups import GroupRouter
    from dicom_node.settings.routes import validate_references

    cfg = load_node_config(config, data_dir)
    manifests, _ = model_manifests(cfg)
    problems = validate_references(cfg.routes, cfg.destinations, models=manifests)
    if problems:
        typer.echo(
            f"{config or 'configuration'}: fix these first, reprocessing would fail "
            "the same way:\n" + "\n".join(f"  {p}" for p in problems),
            err=True,
        )
        raise typer.Exit(2)
    rules = cfg.routes or default_rules(cfg, manifests)
    db = open_database(config, data_dir)
    try:
        done = reprocess_study(GroupRouter(db, JobQueue(db), lambda: rules), study_uid)
    except ReprocessError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    for r in done:
        jobs = ", ".join(map(str, r.job_ids)) or "none"
        typer.echo(
            f"group {r.group_id} (reprocess of group {r.source_group}): {r.state}; "
            f"jobs queued: {jobs}\n  {r.note}"
        )
    if not any(r.job_ids for r in done):
        typer.echo("no job queued: the current routes do not run anything on this study", err=True)
        raise typer.Exit(1)
    typer.echo(
        "a running node picks the jobs up; results keep their UIDs and replace the "
        "earlier ones. Changed destinations or results settings apply once the node "
        "has them: `dicom-node config reload`."
    )
