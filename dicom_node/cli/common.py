"""Options and helpers shared by the admin commands that read a node's database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dicom_node.db import Database
from dicom_node.settings.root import ConfigError, NodeConfig, load_config

if TYPE_CHECKING:
    from rich.progress import Progress

CONFIG_OPT = typer.Option(None, "--config", "-c", help="Node configuration file (YAML).")
DATA_DIR_OPT = typer.Option(None, "--data-dir", help="Data directory (overrides the config).")


def load_node_config(config: Path | None, data_dir: Path | None) -> NodeConfig:
    """The node's configuration, or exit 2 naming every bad key."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if data_dir is not None:
        cfg = cfg.model_copy(update={"data_dir": data_dir})
    return cfg


def open_database(config: Path | None, data_dir: Path | None) -> Database:
    """The node's index database (every table created), or exit 1 if it has none yet."""
    from dicom_node.index import tables  # noqa: F401  (registers tables)
    from dicom_node.jobs import models  # noqa: F401
    from dicom_node.node import DB_FILENAME, database_url

    cfg = load_node_config(config, data_dir)
    if cfg.database_url is None and not (Path(cfg.data_dir) / DB_FILENAME).exists():
        typer.echo(
            f"no index in {Path(cfg.data_dir).resolve()} (nothing received yet; "
            "use --data-dir or --config to point at the node's data)",
            err=True,
        )
        raise typer.Exit(1)
    from dicom_node.schema import SchemaError, ensure_current

    db = Database(database_url(cfg))
    try:
        ensure_current(db)
    except SchemaError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    return db


def progress_bar() -> Progress:
    """The progress bar of a long admin command: done of total, time elapsed; gone
    once it ends (``transient``), so that the report stands alone."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )
