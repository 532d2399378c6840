"""``dicom-node studies``: what the node received and how far each group got."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dicom_node.settings.root import ConfigError, load_config

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    data_dir: Path | None = typer.Option(None, "--data-dir", "-d",
                                         help="Data directory (overrides the config)."),
    state: str | None = typer.Option(None, "--state", help="Only groups in this state."),
    limit: int = typer.Option(50, "--limit", "-n", help="Most recent N groups."),
) -> None:
    """List received study/series groups, most recent first."""
    try:
        cfg = load_config(config)
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    if data_dir is not None:
        cfg = cfg.model_copy(update={"data_dir": data_dir})
    from dicom_node.db import Database
    from dicom_node.index import queries, tables  # noqa: F401
    from dicom_node.node import database_url

    if cfg.database_url is None and not (Path(cfg.data_dir) / "index.sqlite").exists():
        typer.echo(f"no index in {Path(cfg.data_dir).resolve()} (nothing received yet)",
                   err=True)
        raise typer.Exit(1)
    db = Database(database_url(cfg))
    try:
        db.create_all()
        with db.session() as s:
            groups = queries.list_groups(s, state, limit)
    finally:
        db.dispose()
    table = Table(title=f"groups in {db.describe()}")
    for col in ("id", "study", "patient", "modality", "instances", "state", "AE",
                "received (UTC)"):
        table.add_column(col)
    for g in groups:
        table.add_row(str(g.id), g.study_uid + (f"\n series {g.series_uid}" if g.series_uid
                                                else ""),
                      g.patient_id or "", g.modalities, str(g.instance_count), g.state,
                      f"{g.calling_ae}->{g.called_ae}",
                      f"{g.first_received:%Y-%m-%d %H:%M:%S} .. {g.last_received:%H:%M:%S}")
    Console(width=200).print(table)
