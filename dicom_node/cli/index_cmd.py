"""``dicom-node index refresh``: the index values of stored instances, computed again
from their files (after an upgrade that fixed how a value is indexed)."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.cli.common import (
    CONFIG_OPT,
    DATA_DIR_OPT,
    load_node_config,
    open_database,
    progress_bar,
)

app = typer.Typer(help="Maintain the index of stored instances.", no_args_is_help=True)


@app.command()
def refresh(
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
    study: str | None = typer.Option(
        None, "--study", help="Only the instances of this Study Instance UID."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count the rows that would change; change nothing."
    ),
    batch: int = typer.Option(
        500, "--batch", min=1, max=10_000, help="Rows read, and updated in one transaction."
    ),
) -> None:
    """Give index rows the values a receive indexes now, read from their files' headers.

    For rows indexed by an earlier version (e.g. ACR-NEMA dates, series dates added by a
    migration). Safe while the node runs. Exit 1 if a row's file is missing or cannot
    be read (each named on its own line); the other rows are refreshed all the same."""
    from sqlalchemy.exc import OperationalError

    from dicom_node.store import index_refresh as ir
    from dicom_node.store.writer import InstanceStore

    cfg = load_node_config(config, data_dir)
    db = open_database(config, data_dir)
    store = InstanceStore(Path(cfg.data_dir))
    try:
        with progress_bar() as bar:
            task = bar.add_task("rows", total=None)
            report = ir.refresh(
                db,
                store,
                study=study,
                batch=batch,
                dry_run=dry_run,
                total=lambda n: bar.update(task, total=n or None),
                progress=lambda n: bar.advance(task, n),
            )
    except ir.Aborted as err:
        cause = err.__cause__
        typer.echo(
            f"index refresh stopped: the database aborted a batch {ir.TRIES} times "
            f"({getattr(cause, 'orig', cause)}); the batches before it are done: run it again",
            err=True,
        )
        raise typer.Exit(1) from None
    except OperationalError as err:
        typer.echo(
            f"index refresh stopped: the database failed ({err.orig}); the batches "
            "before it are done",
            err=True,
        )
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    for p in report.problems:
        typer.echo(
            f"{p.outcome}: {p.path}  (instance {p.sop_instance_uid} of study {p.study_uid}"
            + (f": {p.reason})" if p.reason else ")")
        )
    if report.columns:
        changed = ", ".join(f"{k} {n}" for k, n in sorted(report.columns.items()))
        typer.echo(f"{'would change' if dry_run else 'changed'}: {changed} (rows per column)")
    if report.counts[ir.LEFT]:
        typer.echo(
            f"{report.counts[ir.LEFT]} row(s) of groups still being received left as they "
            "are: run again once those complete"
        )
    if report.counts[ir.ELSEWHERE]:
        typer.echo(
            f"{report.counts[ir.ELSEWHERE]} row(s) name files outside {store.instances} "
            "(another store, or a moved data directory): not checked"
        )
    typer.echo(("dry run: " if dry_run else "") + report.summary())
    if any(report.counts[o] for o in ir.PROBLEMS):
        raise typer.Exit(1)
