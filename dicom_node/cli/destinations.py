"""``dicom-node destinations list|status``: where results go and what happened there."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dicom_node.cli.common import CONFIG_OPT, DATA_DIR_OPT, load_node_config, open_database
from dicom_node.jobs.destination_status import (
    DestinationStatus,
    destination_status,
    known_destinations,
)

app = typer.Typer(no_args_is_help=True, help="Result destinations: list, delivery status.")
console = Console()


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@app.command("list")
def list_destinations(config: Path | None = CONFIG_OPT) -> None:
    """The configured destinations (credentials never shown)."""
    cfg = load_node_config(config, None)
    table = Table(title=f"{len(cfg.destinations)} destination(s)")
    for col in ("name", "kind", "target"):
        table.add_column(col)
    for d in cfg.destinations:
        target = f"{d.ae_title}@{d.host}:{d.port}" if d.kind == "dimse" else getattr(d, "url", "")
        table.add_row(d.name, d.kind, target)
    console.print(table)


def _row(st: DestinationStatus) -> list[str]:
    last = st.last_attempt
    oldest = st.oldest_pending
    return [
        st.name + ("" if st.configured else " (not configured)"),
        f"{_when(last.at)} {last.outcome} job {last.job_id}" if last else "-",
        f"[green]{st.delivered}[/] / [red]{st.failed}[/] / {st.in_progress}",
        f"{st.pending_jobs}"
        + (f" (job {oldest.job_id} since {_when(oldest.since)})" if oldest else ""),
        f"{_when(st.last_error.at)} {st.last_error.error}"[:160] if st.last_error else "-",
    ]


@app.command("status")
def status(
    name: list[str] = typer.Argument(None, help="Destination names (default: every one)."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
) -> None:
    """Per destination: last attempt, attempts in the last 24 h (delivered / failed /
    under way), jobs still to deliver there (the oldest), the last error."""
    cfg = load_node_config(config, data_dir)
    db = open_database(config, data_dir)
    configured = [d.name for d in cfg.destinations]
    known = [*configured, *known_destinations(db)]
    unknown = [n for n in name or [] if n not in known]
    if unknown:
        typer.echo(f"no destination {unknown[0]!r} configured or on record", err=True)
        raise typer.Exit(1)
    names = name or known
    statuses = destination_status(db, names, configured=configured)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in statuses], indent=2))
        return
    table = Table(title="destinations (attempts in the last 24 h)")
    for col in (
        "destination",
        "last attempt",
        "delivered / failed / under way",
        "pending",
        "last error",
    ):
        table.add_column(col, overflow="fold")
    for st in statuses:
        table.add_row(*_row(st))
    console.print(table)
