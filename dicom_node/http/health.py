"""``/health`` (the process answers), ``/ready`` (it can take work), ``/metrics``."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from starlette.responses import JSONResponse, Response

from dicom_node import metrics
from dicom_node.http.app import authorize, node_of
from dicom_node.jobs.models import Job, JobState
from dicom_node.node import Node


def _database(node: Node) -> str | None:
    with node.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return None


def _dimse(node: Node) -> str | None:
    if not node.scp.listening():
        return "the DIMSE listener is not running"
    return None


def _store_writable(node: Node) -> str | None:
    probe = node.store.incoming / f"ready-{uuid.uuid4().hex}.probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


def _disk(node: Node) -> str | None:
    if node.store.space.has_room():
        return None
    return (
        f"free space {node.store.space.free_bytes() // 2**20} MB is below the reserve of "
        f"{node.store.space.reserve_bytes // 2**20} MB"
    )


def _models(node: Node) -> str | None:
    errors = node.jobs.registry.errors
    if errors:
        return "; ".join(f"{e.path}: {e.message}" for e in errors)
    return None


CHECKS: dict[str, Callable[[Node], str | None]] = {
    "database": _database,
    "dimse_listener": _dimse,
    "store_writable": _store_writable,
    "disk_reserve": _disk,
    "models": _models,
}


def readiness(node: Node) -> dict[str, str]:
    """Each check's result: ``ok`` or what is wrong."""
    results = {}
    for name, check in CHECKS.items():
        try:
            problem = check(node)
        except Exception as err:  # noqa: BLE001 - a check that cannot even run has failed
            problem = f"{type(err).__name__}: {err}"
        results[name] = problem or "ok"
    return results


def queue_depth(node: Node) -> None:
    """Set the jobs-by-state gauge from the job table."""
    with node.db.session() as s:
        counts = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    for state in JobState:
        metrics.QUEUE_DEPTH.labels(state.value).set(counts.get(state.value, 0))


def register(app: FastAPI) -> None:
    """Add the three routes to ``app``."""

    @app.get("/health", include_in_schema=False)
    def health(request: Request) -> JSONResponse:
        if not node_of(request).config.http.open_health:
            authorize(request, "read")
        return JSONResponse({"status": "ok"})

    @app.get("/ready", include_in_schema=False)
    def ready(request: Request) -> JSONResponse:
        node = node_of(request)
        if not node.config.http.open_health:
            authorize(request, "read")
        checks = readiness(node)
        failing = {k: v for k, v in checks.items() if v != "ok"}
        body = {"status": "fail" if failing else "ok", "checks": checks}
        return JSONResponse(body, status_code=503 if failing else 200)

    @app.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:
        node = node_of(request)
        if not node.config.http.open_metrics:
            authorize(request, "read")
        with contextlib.suppress(Exception):  # the other metrics still count
            queue_depth(node)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
