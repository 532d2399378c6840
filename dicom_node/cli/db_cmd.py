"""``dicom-node db status|upgrade``: the database schema's revision and its migrations."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.cli.common import CONFIG_OPT, DATA_DIR_OPT, load_node_config

app = typer.Typer(no_args_is_help=True, help="Database schema: status, upgrade.")


def _database(config: Path | None, data_dir: Path | None):  # type: ignore[no-untyped-def]
    from dicom_node.db import Database
    from dicom_node.index import tables  # noqa: F401  (registers the tables)
    from dicom_node.jobs import models  # noqa: F401
    from dicom_node.node import database_url

    return Database(database_url(load_node_config(config, data_dir)))


@app.command("status")
def status(config: Path | None = CONFIG_OPT, data_dir: Path | None = DATA_DIR_OPT) -> None:
    """The database's schema revision and the one this code expects."""
    from dicom_node.schema import head, revision_of

    db = _database(config, data_dir)
    with db.engine.connect() as conn:
        rev = revision_of(conn)
    want = head()
    typer.echo(
        f"database: {db.describe()}\nschema revision: {rev or '(empty)'}\n"
        f"this code expects: {want}\n"
        + ("up to date" if rev == want else "run `dicom-node db upgrade`")
    )
    db.dispose()


@app.command("upgrade")
def upgrade(config: Path | None = CONFIG_OPT, data_dir: Path | None = DATA_DIR_OPT) -> None:
    """Apply the migrations this database lacks (back it up first). Stop the node and
    its workers while it runs."""
    from dicom_node import schema

    db = _database(config, data_dir)
    try:
        before, after = schema.upgrade(db)
    except Exception as err:  # noqa: BLE001 - any failure is reported the same way
        typer.echo(f"upgrade failed: {type(err).__name__}: {err}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if before == after:
        typer.echo(f"already at {after}")
    else:
        typer.echo(f"upgraded {db.describe()}: {before or '(empty)'} -> {after}")
