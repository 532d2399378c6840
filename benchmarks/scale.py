#!/usr/bin/env python3
"""Distributed execution: the control plane's ceiling and the cost of distribution.

Starts its own PostgreSQL and redis-server on loopback, then, in one run:

(a) coordination ceiling: N no-op jobs (forward jobs with no inputs and no destinations:
    claim, mark, finish, nothing else) pushed through the node's sweeper (publish to Redis)
    and K `dicom-node worker` processes (CAS claim on PostgreSQL), for K = 1 and 2; and the
    same jobs through the embedded executor (2 threads) on the same database. Prints
    jobs/s for each. (a) divided by one GPU worker's jobs/s says how many workers one
    node can keep fed.
(b) studies per minute, same studies (one CR image each, storescu -> node -> storescp,
    after 2 untimed warm-up studies; ONNX Runtime 1 intra-op thread per session in both):
    one `serve` with the embedded executor (2 threads) against one node + 2 Celery workers
    (separate processes and data dirs, PostgreSQL, Redis). Prints both and the ratio.

    python benchmarks/scale.py [--jobs 300] [--studies 12] [--model demo|tiny]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from dicom_node import synthetic  # noqa: E402
from dicom_node.db import Database  # noqa: E402
from dicom_node.index import tables  # noqa: E402, F401
from dicom_node.jobs.executor import LocalExecutor  # noqa: E402
from dicom_node.jobs.models import Job  # noqa: E402
from dicom_node.jobs.pipeline import JobRunner  # noqa: E402
from dicom_node.jobs.queue import JobQueue, NewJob  # noqa: E402
from dicom_node.jobs.sweeper import Sweeper  # noqa: E402
from dicom_node.model_registry import load_registry  # noqa: E402
from dicom_node.settings.jobs import JobsSettings  # noqa: E402
from dicom_node.settings.root import NodeConfig  # noqa: E402
from dicom_node.store.writer import InstanceStore  # noqa: E402
from tests.scale.cluster import model_packages, node_config, storescu, worker  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.storescp import StoreSCP  # noqa: E402


def _done(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Job).where(Job.state == "done")) or 0


def _noop_jobs(db: Database, n: int, offset: int) -> None:
    q = JobQueue(db)
    for i in range(n):
        q.enqueue(
            NewJob(
                group_id=offset + i,
                rule_name="noop",
                action="forward",
                study_uid=f"1.2.{offset + i}",
            )
        )


def _wait_done(db: Database, n: int, timeout: float = 600) -> float:
    t0 = time.perf_counter()
    while _done(db) < n:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{_done(db)} of {n} jobs done")
        time.sleep(0.02)
    return time.perf_counter() - t0


def ceiling_celery(pg: PostgresServer, redis: RedisServer, tmp: Path, n: int, k: int) -> float:
    url = pg.create_database()
    db = Database(url)
    db.create_all()
    settings = JobsSettings(executor="celery", broker_url=redis.url, sweep_seconds=0.2)
    cfg = {"database_url": url, "jobs": settings.model_dump(mode="json"), "destinations": []}
    workers = [worker(tmp / f"c{k}", f"noop{k}-{i}", cfg, []) for i in range(k)]
    for w in workers:
        w.start()
    sweeper = Sweeper(db, JobQueue(db), lambda: settings)
    try:
        _noop_jobs(db, n, 0)
        t0 = time.perf_counter()
        sweeper.start()
        _wait_done(db, n)
        return n / (time.perf_counter() - t0)
    finally:
        sweeper.stop()
        for w in workers:
            w.stop()
        db.dispose()


def ceiling_embedded(pg: PostgresServer, tmp: Path, n: int) -> float:
    """The same no-op jobs through the embedded executor and the same pipeline."""
    db = Database(pg.create_database())
    db.create_all()
    queue = JobQueue(db)
    _noop_jobs(db, n, 0)
    cfg = NodeConfig(data_dir=tmp / "embedded", models={"bundled": False})
    store = InstanceStore(cfg.data_dir)
    store.open()
    runner = JobRunner(db, queue, store, load_registry(cfg), lambda: cfg)
    ex = LocalExecutor(queue, runner, workers=2, poll_seconds=0.05)
    t0 = time.perf_counter()
    ex.start()
    try:
        _wait_done(db, n)
        return n / (time.perf_counter() - t0)
    finally:
        ex.stop()
        db.dispose()


def studies_per_minute(
    pg: PostgresServer,
    redis: RedisServer,
    tmp: Path,
    studies: list,
    warmup: list,
    model: str,
    distributed: bool,
) -> float:
    url = pg.create_database()
    tag = "dist" if distributed else "embedded"
    with StoreSCP(tmp / f"pacs-{tag}", ae_title="PACS") as pacs:
        cfg = node_config(url, redis.url, pacs.port)
        cfg["routes"] = [
            {
                "name": "cr",
                "match": {"modality": ["CR"]},
                "models": [model],
                "destinations": ["PACS"],
            }
        ]
        packages = (
            []
            if model == "demo-cxr-densenet121"
            else [model_packages(tmp / f"models-{tag}")["tiny-cr"]]
        )
        models_cfg = {
            "bundled": not packages,
            "packages": [str(p) for p in packages],
            "intra_op_threads": 1,
        }  # as the workers (cluster.worker)
        workers = []
        if distributed:
            workers = [
                worker(tmp, f"{tag}-w{i}", cfg, packages, bundled=not packages) for i in range(2)
            ]
            cfg["models"] = {"bundled": False}
        else:
            cfg["jobs"] = {**cfg["jobs"], "executor": "embedded", "workers": 2}
            cfg["models"] = models_cfg
        node = NodeProcess(tmp / f"node-{tag}", config=cfg)
        with node:
            for w in workers:
                w.start()
            try:
                db = Database(url)
                # Warm-up (untimed): one study per worker slot, so that each process's
                # first inference, SR write and association are not in the figure.
                for files in warmup:
                    storescu(node.port, files)
                _wait_done(db, len(warmup))
                t0 = time.perf_counter()
                for files in studies:
                    storescu(node.port, files)
                _wait_done(db, len(warmup) + len(studies))
                elapsed = time.perf_counter() - t0
                db.dispose()
            finally:
                for w in workers:
                    w.stop()
    return len(studies) / elapsed * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--studies", type=int, default=12)
    ap.add_argument("--model", choices=["demo", "tiny"], default="demo")
    args = ap.parse_args()
    model = "demo-cxr-densenet121" if args.model == "demo" else "tiny-cr"
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as d,
        PostgresServer() as pg,
        RedisServer(Path(d) / "redis") as redis,
    ):
        tmp = Path(d)
        print(f"(a) coordination ceiling, {args.jobs} no-op jobs, PostgreSQL + Redis")
        emb = ceiling_embedded(pg, tmp, args.jobs)
        print(f"    embedded executor, 2 threads:        {emb:8.1f} jobs/s  (same pipeline)")
        for k in (1, 2):
            rate = ceiling_celery(pg, redis, tmp, args.jobs, k)
            print(f"    sweeper + {k} Celery worker(s):       {rate:8.1f} jobs/s")
        studies = []
        for i in range(args.studies + 2):
            ds = synthetic.make_cr(synthetic.Patient(patient_id=f"SCALE{i:03d}"), seed=500 + i)
            studies.append(synthetic.write_files([ds], tmp / "studies" / str(i)))
        warmup, studies = studies[:2], studies[2:]
        print(f"(b) {args.studies} one-image CR studies, model {model}, results to storescp")
        e = studies_per_minute(pg, redis, tmp, studies, warmup, model, distributed=False)
        print(f"    one serve, embedded executor:        {e:8.1f} studies/min")
        c = studies_per_minute(pg, redis, tmp, studies, warmup, model, distributed=True)
        print(f"    node + 2 Celery workers:             {c:8.1f} studies/min")
        print(f"    ratio distributed / embedded:        {c / e:8.2f}")


if __name__ == "__main__":
    main()
