"""``dicom-node config``: check a configuration file; make a running node reload it."""

from __future__ import annotations

from pathlib import Path

import typer

from dicom_node.settings.root import ConfigError, load_config

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(file: Path = typer.Argument(..., help="YAML configuration file to validate.")) -> None:
    """Validate FILE; print every error with its path and exit non-zero if any.

    Besides each key, it checks what keys refer to: route destinations, and route models
    against the packages the file's ``models:`` section provides (read from their
    manifests; nothing is loaded).
    """
    from dicom_node.model_registry import model_manifests, model_names

    try:
        cfg = load_config(file, models=model_names)
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    manifests, refused = model_manifests(cfg)
    titles = ", ".join(a.ae_title for a in cfg.ae_titles)
    typer.echo(
        f"{file}: OK (AE titles {titles}; port {cfg.port}; "
        f"{len(cfg.routes)} route(s), {len(cfg.destinations)} destination(s); "
        f"models: {', '.join(sorted(manifests)) or 'none'})"
    )
    for err in refused:
        typer.echo(f"note: model package {err.path} is not usable: {err.message}", err=True)


@app.command("reload")
def reload(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="The running node's configuration file."
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="The running node's data directory."
    ),
) -> None:
    """Make the node that uses this data directory re-read its configuration (SIGHUP).

    The file's fields are checked here first; the node then checks it as it will run
    it (routes against the models it has loaded) and refuses one that cannot apply,
    keeping its running configuration (its log says why). Routes, destinations, jobs
    and results apply to new groups and jobs; listener, storage and model settings and
    who runs jobs (jobs.executor, broker_url, workers) need a restart.
    """
    import os
    import signal

    from dicom_node.cli.common import load_node_config
    from dicom_node.node import PID_FILENAME

    cfg = load_node_config(config, data_dir)
    pid_file = Path(cfg.data_dir) / PID_FILENAME
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as err:
        typer.echo(
            f"no running node for {Path(cfg.data_dir).resolve()} ({pid_file}: {err}); "
            "start one with `dicom-node serve`",
            err=True,
        )
        raise typer.Exit(1) from None
    typer.echo(
        f"asked node (pid {pid}) to reload {config or 'its configuration'}; "
        "see its log for the outcome"
    )
