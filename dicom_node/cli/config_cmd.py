"""``dicom-node config``: check a configuration file."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.settings.root import ConfigError, load_config

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(file: Path = typer.Argument(..., help="YAML configuration file to validate.")) -> None:
    """Validate FILE; print every error with its path and exit non-zero if any."""
    try:
        cfg = load_config(file)
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    titles = ", ".join(a.ae_title for a in cfg.ae_titles)
    typer.echo(f"{file}: OK (AE titles {titles}; port {cfg.port}; "
               f"{len(cfg.routes)} route(s), {len(cfg.destinations)} destination(s))")
