"""Command group: route (``dicom-node route explain``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from dicom_node.cli.common import load_node_config
from dicom_node.routing.explain import explain_path, explanation_to_dict, render_explanation

app = typer.Typer(no_args_is_help=True, help="Routing rules: explain what would match.")


@app.command()
def explain(
    path: Path = typer.Argument(..., help="A DICOM file or a folder of DICOM files."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        envvar="DICOM_NODE_CONFIG",
        help="Node configuration file (YAML) holding the routes.",
    ),
    called_ae: str = typer.Option("", "--called-ae", help="Pretend this AE was called."),
    calling_ae: str = typer.Option("", "--calling-ae", help="Pretend this AE sent it."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """For each series under PATH: which rule matches, and why earlier rules did not."""
    err = Console(stderr=True)
    cfg = load_node_config(config, None)
    try:
        exp = explain_path(path, cfg.routes, called_ae=called_ae, calling_ae=calling_ae)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(explanation_to_dict(exp), indent=2))
    else:
        render_explanation(exp, Console())
