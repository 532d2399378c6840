"""``dicom-node worker``: a Celery worker process that runs jobs for the models it loaded.

It consumes only the queues of its models (``broker.queues_of``), one message at a time
(solo pool, prefetch 1, late acks). Each message names a job id; the worker claims that
job with the queue's compare-and-set and runs the same pipeline as the embedded executor
(inputs from ``JobInputs``, delivery recorded in the shared database). A message for a
job it cannot claim (a duplicate, or a job already finished) is acknowledged and dropped.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from celery.signals import worker_ready
from prometheus_client import start_http_server

from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.jobs.broker import TASK, make_app, queues_of
from dicom_node.jobs.inputs import JobInputs, SharedFilesystem, WadoRsInputs
from dicom_node.jobs.pipeline import JobRunner
from dicom_node.jobs.queue import JobQueue
from dicom_node.jobs.workers import Heartbeat, WorkerIdentity
from dicom_node.memory import (
    freeze_after_first_job,
    freeze_long_lived_objects,
    release_free_memory,
)
from dicom_node.model_registry import load_registry
from dicom_node.settings.root import NodeConfig
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)


def default_name() -> str:
    return f"worker@{socket.gethostname()}:{os.getpid()}"


def _serve_metrics(cfg: NodeConfig) -> str | None:
    """Start /metrics on the configured port (each worker its own: works across hosts,
    where Prometheus multiprocess mode would need one shared directory)."""
    port = cfg.worker.metrics_port
    if port is None:
        return None
    server, _thread = start_http_server(port, addr=cfg.worker.metrics_address)
    bound = server.server_address[1]
    host = cfg.worker.metrics_address
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{host}:{bound}/metrics"


def make_inputs(cfg: NodeConfig) -> JobInputs:
    """Where this worker reads job inputs (``worker.inputs``)."""
    w = cfg.worker
    if w.inputs == "wado-rs":
        assert w.node_url is not None  # checked by the settings
        return WadoRsInputs(
            w.node_url, Path(cfg.data_dir).resolve() / "fetched", token=w.node_token
        )
    return SharedFilesystem()


def run_worker(cfg: NodeConfig, db: Database, inputs: JobInputs | None = None) -> None:
    """Load the models, report for duty, consume until SIGTERM/SIGINT."""
    registry = load_registry(cfg)
    models = sorted(registry.models)
    for err in registry.errors:
        log.error("model package refused: %s: %s", err.path, err.message)
    store = InstanceStore(Path(cfg.data_dir), reserve_bytes=cfg.disk_reserve_mb * 2**20)
    store.open(owner=False)  # the node's incoming/ is not ours to clean
    queue = JobQueue(db, lease_seconds=cfg.jobs.lease_seconds)
    inputs = inputs or make_inputs(cfg)
    runner = JobRunner(db, queue, store, registry, lambda: cfg, inputs=inputs)
    queues = queues_of(models)
    me = WorkerIdentity(
        name=cfg.worker.name or default_name(),
        host=socket.gethostname(),
        pid=os.getpid(),
        models=models,
        queues=queues,
        metrics_url=_serve_metrics(cfg),
        provider=", ".join(sorted({m.provider for m in registry.models.values()})) or "-",
    )
    heart = Heartbeat(db, queue, me, cfg.worker.heartbeat_seconds)
    app = make_app(cfg.jobs.broker_url)

    @app.task(name=TASK, ignore_result=True)
    def run_job(job_id: int) -> None:
        claim = queue.claim_id(int(job_id), me.name)
        if claim is None:
            metrics.JOB_MESSAGES_DROPPED.inc()
            log.info("job %s: message dropped: not claimable (taken, finished or not due)", job_id)
            return
        log.info("job %s claimed by %s (attempt %d)", job_id, me.name, claim.attempt)
        heart.hold(claim)
        metrics.JOBS_IN_HAND.inc()
        try:
            runner(claim)
        except Exception as exc:  # a job must never kill the worker
            log.exception("job %s crashed its worker", claim.job_id)
            runner.crashed(claim, exc)
        finally:
            inputs.release()
            heart.release(claim)
            metrics.JOBS_IN_HAND.dec()
            freeze_after_first_job()  # what it loaded for good: out of the GC's way
            release_free_memory()

    @worker_ready.connect(weak=False)
    def _ready(**_kw: object) -> None:
        freeze_long_lived_objects()  # models, Celery, imports: never garbage
        log.info(
            "dicom-node worker %s ready: models %s; queues %s; inputs %s; metrics %s",
            me.name,
            ", ".join(models) or "(none: forward jobs only)",
            ", ".join(queues),
            cfg.worker.inputs,
            me.metrics_url or "off",
        )

    heart.start()
    try:
        app.worker_main(
            argv=[
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--prefetch-multiplier=1",
                f"--queues={','.join(queues)}",
                f"--hostname=dicom-node-{me.pid}@{me.host}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--loglevel={logging.getLevelName(logging.getLogger().level)}",
            ]
        )
    finally:
        heart.stop()
        registry.close()
        store.close()
