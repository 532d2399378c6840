"""``dicom-node worker`` (run jobs from the broker) and ``dicom-node workers list``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from dicom_node import logsetup
from dicom_node.cli.common import CONFIG_OPT, DATA_DIR_OPT, load_node_config, open_database
from dicom_node.jobs.models import WorkerRecord, utcnow

console = Console()
workers_app = typer.Typer(no_args_is_help=True, help="Workers that run jobs (executor: celery).")


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``workers`` to ``app``."""

    @app.command()
    def worker(
        config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
        name: str | None = typer.Option(
            None, "--name", help="Worker name (default worker@<host>:<pid>)."
        ),
        metrics_port: int | None = typer.Option(
            None, "--metrics-port", help="Serve /metrics here (0: any port)."
        ),
    ) -> None:
        """Run jobs for the models this configuration loads, from the Celery broker."""
        cfg = load_node_config(config, None)
        if cfg.jobs.executor != "celery":
            typer.echo(
                f"{config or 'the default configuration'}: jobs.executor is "
                f"{cfg.jobs.executor!r}; a worker needs `jobs.executor: celery` (and "
                "the node must use it too, or it runs the jobs itself)",
                err=True,
            )
            raise typer.Exit(2)
        update = {
            k: v for k, v in (("name", name), ("metrics_port", metrics_port)) if v is not None
        }
        if update:
            cfg = cfg.model_copy(update={"worker": cfg.worker.model_copy(update=update)})
        logsetup.configure(cfg.logging.level)
        from dicom_node.db import Database
        from dicom_node.index import tables  # noqa: F401  (registers the tables)
        from dicom_node.jobs import models  # noqa: F401
        from dicom_node.jobs.worker import run_worker
        from dicom_node.node import database_url
        from dicom_node.schema import ensure_current

        try:
            db = Database(database_url(cfg))
            ensure_current(db)  # an older schema: the message names `dicom-node db upgrade`
        except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
            typer.echo(f"cannot start: {type(err).__name__}: {err}", err=True)
            raise typer.Exit(1) from None
        try:
            run_worker(cfg, db)
        finally:
            db.dispose()

    app.add_typer(workers_app, name="workers")


def _ago(when: dt.datetime | None) -> str:
    if when is None:
        return "-"
    return f"{(utcnow() - when).total_seconds():.0f} s ago"


@workers_app.command("list")
def list_workers(
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
    hours: float = typer.Option(24, help="Workers seen in the last N hours."),
) -> None:
    """Workers that reported recently: host, models, provider, jobs in hand, last seen."""
    cfg = load_node_config(config, data_dir)
    lease = dt.timedelta(seconds=cfg.jobs.lease_seconds)
    db = open_database(config, data_dir)
    with db.session() as s:
        rows = s.scalars(
            select(WorkerRecord)
            .where(WorkerRecord.last_seen >= utcnow() - dt.timedelta(hours=hours))
            .order_by(WorkerRecord.last_seen.desc())
        ).all()
    table = Table(title=f"workers ({len(rows)})")
    for col in (
        "name",
        "host",
        "pid",
        "models",
        "provider",
        "jobs in hand",
        "last seen",
        "status",
        "metrics",
    ):
        table.add_column(col, overflow="fold")
    now = utcnow()
    for w in rows:
        status = (
            "stopped"
            if w.stopped_at
            else "[green]alive[/]"
            if now - w.last_seen <= lease
            else "[red]gone (no heartbeat)[/]"
        )
        table.add_row(
            w.name,
            w.host,
            str(w.pid),
            ", ".join(w.models or []) or "-",
            w.provider,
            ", ".join(map(str, w.jobs_in_hand or [])) or "-",
            _ago(w.last_seen),
            status,
            w.metrics_url or "-",
        )
    console.print(table)
