"""``dicom-node studies``: what the node received and how far each group got."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dicom_node.cli.common import CONFIG_OPT, DATA_DIR_OPT, open_database

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
    state: str | None = typer.Option(None, "--state", help="Only groups in this state."),
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
    for col in ("id", "study", "patient", "modality", "instances", "state", "AE",
                "received (UTC)", "routing"):
        table.add_column(col)
    for g in groups:
        table.add_row(str(g.id), g.study_uid + (f"\n series {g.series_uid}" if g.series_uid
                                                else ""),
                      g.patient_id or "", g.modalities, str(g.instance_count), g.state,
                      f"{g.calling_ae}->{g.called_ae}",
                      f"{g.first_received:%Y-%m-%d %H:%M:%S} .. {g.last_received:%H:%M:%S}",
                      (g.route_note or "")[:120])
    Console(width=200).print(table)
