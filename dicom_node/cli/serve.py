"""``dicom-node serve``: start the node."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dicom_node import logsetup
from dicom_node.memory import (
    SERVING_MMAP_THRESHOLD,
    STARTUP_MMAP_THRESHOLD,
    freeze_long_lived_objects,
    limit_malloc_arenas,
    set_mmap_threshold,
)
from dicom_node.reload import demo_route_warnings, reload
from dicom_node.settings.root import (
    ConfigError,
    NodeConfig,
    read_config_data,
    validate_config,
)

if TYPE_CHECKING:
    from dicom_node.node import Node

_DEST = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d{1,5})$")


def parse_destination(spec: str) -> dict[str, Any]:
    """``AE@host:port`` as the raw ``destinations:`` entry it stands for."""
    m = _DEST.match(spec.strip())
    if not m or not (1 <= int(m["port"]) <= 65535) or not m["ae"].strip():
        raise ValueError(f"--destination {spec!r}: expected AE@host:port")
    host = m["host"].strip("[]")
    ae = m["ae"].strip()
    return {"name": ae, "kind": "dimse", "ae_title": ae, "host": host, "port": int(m["port"])}


def build_config(
    config: Path | None,
    port: int | None,
    ae_title: str | None,
    data_dir: Path | None,
    destinations: list[str],
    http_port: int | None = None,
) -> NodeConfig:
    """The file's settings (or the defaults) with the command-line flags applied, route
    models checked against the packages its ``models:`` section provides."""
    from dicom_node.model_registry import model_names

    data, source = config_data(config, port, ae_title, data_dir, destinations, http_port)
    return validate_config(data, source, models=model_names)


def config_data(
    config: Path | None,
    port: int | None,
    ae_title: str | None,
    data_dir: Path | None,
    destinations: list[str],
    http_port: int | None = None,
) -> tuple[dict[str, Any], str]:
    """The file's parsed settings (or none) with the command-line flags applied, not yet
    validated, and where they come from."""
    data: dict[str, Any] = read_config_data(config) if config else {}
    source = str(config) if config else "command line"
    if port is not None:
        data["port"] = port
    if http_port is not None:
        http = data.get("http")
        data["http"] = {**(http if isinstance(http, dict) else {}), "port": http_port}
    if data_dir is not None:
        data["data_dir"] = str(data_dir)
    if ae_title is not None:
        titles = data.get("ae_titles") or [{}]
        if isinstance(titles, list) and titles and isinstance(titles[0], dict):
            titles = [{**titles[0], "ae_title": ae_title}, *titles[1:]]
        data["ae_titles"] = titles
    if destinations:
        errors = []
        extra = []
        for spec in destinations:
            try:
                extra.append(parse_destination(spec))
            except ValueError as err:
                errors.append(str(err))
        if errors:
            raise ConfigError("command line", errors)
        data["destinations"] = [*(data.get("destinations") or []), *extra]
    return data, source


def banner(
    cfg: NodeConfig,
    db_description: str,
    models: list[str] | None = None,
    warnings: Sequence[str] = (),
) -> str:
    """The start-up banner: where the node listens, stores, indexes; which models run;
    then any ``warnings``."""
    lines = ["dicom-node is running"]
    for a in cfg.ae_titles:
        allow = (
            ", ".join(c.ae_title + (f"@{c.host}" if c.host else "") for c in a.allowed_calling)
            or "any calling AE"
        )
        lines.append(
            f"  AE title: {a.ae_title}  (group by {a.group_by}, quiet "
            f"{a.quiet_seconds:g} s, accepts {allow})"
        )
    lines.append(
        f"  port: {cfg.port} on {cfg.bind_address}  (max {cfg.max_associations} "
        f"associations, {cfg.associations_per_peer()} per address, "
        f"+ {cfg.max_waiting_connections} waiting, "
        f"max PDU {cfg.max_pdu_bytes or 'unlimited'})"
    )
    lines.append(http_line(cfg))
    lines.append(f"  data dir: {Path(cfg.data_dir).resolve()}")
    lines.append(f"  database: {db_description}")
    lines.append("  models:")
    lines += [f"    {m}" for m in (models or ["(none)"])]
    lines.append(
        f"  destinations: {', '.join(d.name for d in cfg.destinations) or '(none)'}"
        f";  routes: {len(cfg.routes) or 'default (each model on what it applies to)'}"
    )
    lines += warnings
    return "\n".join(lines)


def http_line(cfg: NodeConfig) -> str:
    """The banner line of the HTTP port: where, and who may use it."""
    http = cfg.http
    if not http.enabled:
        return "  HTTP: off (http.enabled: false)"
    host = http.effective_bind(cfg.bind_address)
    access = (
        f"{len(http.tokens)} bearer token(s)"
        if http.tokens
        else "no token configured: bound to 127.0.0.1 only, open to local clients"
    )
    return (
        f"  HTTP: http://{host}:{http.port}  (DICOMweb /dicomweb, STOW-RS as "
        f"{http.web_source.ae_title}; /health /ready /metrics; {access})"
    )


def model_lines(node: Node) -> list[str]:
    """One banner line per loaded model (with its execution provider) or refused package."""
    registry = node.jobs.registry
    lines = [
        f"{name} {m.identity.version} on {m.provider}"
        + ("  [NON-CLINICAL DEMO]" if m.identity.demo else "")
        for name, m in sorted(registry.models.items())
    ]
    lines += [f"REFUSED {e.path}: {e.message}" for e in registry.errors]
    return lines or ["(none)"]


def _reload(node: Node) -> None:
    """SIGHUP: read the configuration again; one that cannot apply is refused (logged)
    and the running one stays."""
    try:
        reload(node)
    except ConfigError:
        pass  # logged with every error's path
    except Exception:  # a bug while reading: the node keeps serving what it runs
        logging.getLogger("dicom_node").exception(
            "configuration reload refused; keeping the running configuration"
        )


def _setup_logging(cfg: NodeConfig) -> None:
    logsetup.configure(cfg.logging.level, cfg.logging.pynetdicom_level)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""

    @app.command()
    def serve(
        config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
        port: int | None = typer.Option(None, "--port", "-p", help="TCP port to listen on."),
        ae_title: str | None = typer.Option(
            None, "--ae-title", "-a", help="Called AE title (replaces the first)."
        ),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", "-d", help="Where files and the index live."
        ),
        destination: list[str] = typer.Option(
            [], "--destination", help="Result destination AE@host:port (repeatable)."
        ),
        http_port: int | None = typer.Option(
            None, "--http-port", help="HTTP port (DICOMweb, health, metrics)."
        ),
    ) -> None:
        """Start the node: receive studies, store them durably, assemble them."""
        try:
            cfg = build_config(config, port, ae_title, data_dir, destination, http_port)
        except ConfigError as err:
            typer.echo(str(err), err=True)
            raise typer.Exit(2) from None
        _setup_logging(cfg)
        limit_malloc_arenas()  # before any association or worker thread exists
        set_mmap_threshold(STARTUP_MMAP_THRESHOLD)  # model build, load and warm-up
        from dicom_node.http.server import HttpServer
        from dicom_node.node import PID_FILENAME, Node  # late: config errors answer fast

        # Signals first: a SIGTERM while the node starts stops it cleanly once started.
        stop = threading.Event()
        reload_requested = threading.Event()
        log = logging.getLogger("dicom_node")

        def _on_signal(signum: int, _frame: object) -> None:
            if signum == signal.SIGHUP:
                reload_requested.set()
                return
            log.info("%s received: shutting down", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _on_signal)

        node = None
        try:
            node = Node(cfg)
            node.config_source = lambda: config_data(
                config, port, ae_title, data_dir, destination, http_port
            )
            node.start()
            http = HttpServer(node) if cfg.http.enabled else None
            if http is not None:
                http.start()
        # Port in use, unwritable data dir, database unreachable...: one line, exit 1.
        except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
            typer.echo(f"cannot start: {type(err).__name__}: {err}", err=True)
            if node is not None:
                node.stop(grace=0)
            raise typer.Exit(1) from None
        set_mmap_threshold(SERVING_MMAP_THRESHOLD)  # jobs reuse the heap; trimmed per job
        freeze_long_lived_objects()  # never garbage: out of every full collection's way
        warnings = demo_route_warnings(node)
        for line in warnings:
            logging.getLogger("dicom_node").warning("%s", line.removeprefix("WARNING: "))
        typer.echo(banner(cfg, node.db.describe(), model_lines(node), warnings))
        sys.stdout.flush()
        pid_file = Path(cfg.data_dir) / PID_FILENAME
        pid_file.write_text(f"{os.getpid()}\n")
        while not stop.wait(0.2):
            if reload_requested.is_set():
                reload_requested.clear()
                _reload(node)
        if http is not None:
            http.stop()
        node.stop()
        pid_file.unlink(missing_ok=True)
        typer.echo("dicom-node stopped")
