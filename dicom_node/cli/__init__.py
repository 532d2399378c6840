"""The ``dicom-node`` command. Each command group lives in its own module."""

from __future__ import annotations

import typer

from dicom_node import __version__
from dicom_node.cli import (
    config_cmd,
    db_cmd,
    demo,
    destinations,
    index_cmd,
    jobs,
    models,
    results,
    route,
    serve,
    store_cmd,
    studies,
    worker,
)

app = typer.Typer(
    name="dicom-node",
    help="DICOM-native AI inference node.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dicom-node {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """DICOM-native AI inference node."""


serve.register(app)
demo.register(app)
worker.register(app)
app.add_typer(studies.app, name="studies")
app.add_typer(config_cmd.app, name="config")
app.add_typer(models.app, name="models")
app.add_typer(results.app, name="results")
app.add_typer(route.app, name="route")
app.add_typer(jobs.app, name="jobs")
app.add_typer(db_cmd.app, name="db")
app.add_typer(destinations.app, name="destinations")
app.add_typer(store_cmd.app, name="store")
app.add_typer(index_cmd.app, name="index")


def main() -> None:
    app()
