"""``dicom-node store``: maintenance of the instance store."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dicom_node.cli.common import (
    CONFIG_OPT,
    DATA_DIR_OPT,
    load_node_config,
    open_database,
    progress_bar,
)

app = typer.Typer(help="Maintain the instance store.", no_args_is_help=True)


def serving_pid(data_dir: Path) -> int | None:
    """The pid of a live ``dicom-node serve`` on ``data_dir`` (its pid file), else None."""
    from dicom_node.node import PID_FILENAME

    try:
        pid = int((Path(data_dir) / PID_FILENAME).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None  # no pid file, or its process is gone (a crash left it)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # cannot tell: assume it is the node
    return pid if b"dicom" in cmdline else None  # a reused pid is not a node


@app.command()
def reconcile(
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the unindexed files; change nothing."
    ),
    origin_ae: str | None = typer.Option(
        None,
        "--origin-ae",
        help="Index files that have no origin record (a store written before origin "
        "records) as received on this AE title of the node, from an unknown calling AE. "
        "Without it they are left in place and listed.",
    ),
) -> None:
    """Index stored instance files that have no index row (lost by a power cut).

    Refused while a node serves the same data directory (it reconciles on start)."""

    from dicom_node.index.recorder import Recorder
    from dicom_node.store import owner
    from dicom_node.store import reconcile as rec
    from dicom_node.store.writer import InstanceStore

    cfg = load_node_config(config, data_dir)
    unrecorded = None
    if origin_ae is not None:
        from dicom_node.store.origin import DIMSE, Origin

        titles = [a.ae_title for a in cfg.ae_titles]
        if origin_ae not in titles:
            typer.echo(
                f"--origin-ae {origin_ae!r} is not one of the node's AE titles "
                f"({', '.join(titles)})",
                err=True,
            )
            raise typer.Exit(2)
        unrecorded = Origin(DIMSE, origin_ae, "", None)
    pid = serving_pid(Path(cfg.data_dir))
    if pid is not None:
        typer.echo(
            f"a node (pid {pid}) is serving {Path(cfg.data_dir).resolve()}: stop it first "
            "(it reconciles the store itself when it starts after an unclean stop)",
            err=True,
        )
        raise typer.Exit(1)
    db = open_database(config, data_dir)
    try:  # a node still starting has no pid file yet; it holds the directory already
        held = owner.hold(Path(cfg.data_dir))
    except owner.DataDirInUse as err:
        db.dispose()
        typer.echo(f"{err}: stop it first", err=True)
        raise typer.Exit(1) from None
    store = InstanceStore(Path(cfg.data_dir))
    recorder = Recorder(db, cfg.source)
    try:
        with progress_bar() as bar:
            with db.engine.connect() as conn:  # an estimate: files the index knows
                total = conn.exec_driver_sql("SELECT count(*) FROM instances").scalar_one()
            task = bar.add_task("files", total=total or None)
            report = rec.reconcile(
                store,
                db,
                recorder,
                dry_run=dry_run,
                progress=lambda n: bar.advance(task, n),
                unrecorded=unrecorded,
            )
    finally:
        recorder.close()
        db.dispose()
        owner.let_go(held)
    verb = "would re-index" if dry_run else rec.REINDEXED
    for f in report.files:
        what = verb if f.outcome == rec.REINDEXED else f.outcome
        typer.echo(f"{what}: {f.path}" + (f"  ({f.reason})" if f.reason else ""))
    for d in report.leftovers:
        typer.echo(f"{'would remove' if dry_run else 'removed'}: {d}  (no instance, no index row)")
    typer.echo(("dry run: " if dry_run else "") + report.summary())
