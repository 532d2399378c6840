"""A node and Celery workers as separate processes (own data dirs, own configs), one
PostgreSQL database, one redis-server and a DCMTK storescp destination: the pieces the
distributed tests assemble."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from pydicom import dcmread

from tests.support.dcmtk import dcmtk_tool
from tests.support.node_process import ROOT, NodeProcess
from tests.support.tiny_model import tiny_package
from tests.support.worker_process import WorkerProcess

SQL_JOBS = "select id, state, attempts, claimed_by, models, error from jobs order by id"


def model_packages(root: Path) -> dict[str, Path]:
    """Two tiny models: ``tiny-cr`` applies to CR, ``tiny-dx`` to DX (fast on any CPU)."""
    root.mkdir(parents=True, exist_ok=True)
    output = {
        "scores": "scores",
        "activation": "softmax",
        "labels": [
            {"name": n, "threshold": 0.5, "code": {"value": v, "scheme": "99TEST", "meaning": n}}
            for n, v in (("bright", "X0"), ("dark", "X1"))
        ],
    }
    return {
        name: tiny_package(root, name, applies_to={"modalities": [modality]}, output=output)
        for name, modality in (("tiny-cr", "CR"), ("tiny-dx", "DX"))
    }


def routes(extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """CR -> tiny-cr, DX -> tiny-dx, results to PACS; calling AE WAITER -> a model no
    worker has."""
    return [
        {
            "name": "waiter",
            "match": {"calling_ae": ["WAITER"]},
            "models": ["absent-model"],
            "destinations": ["PACS"],
        },
        {
            "name": "cr",
            "match": {"modality": ["CR"]},
            "models": ["tiny-cr"],
            "destinations": ["PACS"],
        },
        {
            "name": "dx",
            "match": {"modality": ["DX"]},
            "models": ["tiny-dx"],
            "destinations": ["PACS"],
        },
        *(extra or []),
    ]


def node_config(db_url: str, broker: str, pacs_port: int, **jobs: Any) -> dict[str, Any]:
    return {
        "database_url": db_url,
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
        "models": {"bundled": False},
        "jobs": {
            "executor": "celery",
            "broker_url": broker,
            "sweep_seconds": 0.5,
            "republish_seconds": 30,
            "lease_seconds": 6,
            **jobs,
        },
        "routes": routes(),
        "destinations": [
            {
                "name": "PACS",
                "kind": "dimse",
                "ae_title": "PACS",
                "host": "127.0.0.1",
                "port": pacs_port,
            }
        ],
    }


def worker(
    tmp: Path,
    name: str,
    node_cfg: dict[str, Any],
    packages: list[Path],
    metrics: bool = False,
    **models: Any,
) -> WorkerProcess:
    """A worker loading ``packages`` only, with the node's database, broker and
    destinations (it delivers what it writes)."""
    cfg = {k: node_cfg[k] for k in ("database_url", "jobs", "destinations")}
    cfg["models"] = {
        "bundled": False,
        "packages": [str(p) for p in packages],
        "intra_op_threads": 1,
        **models,
    }
    w = WorkerProcess(tmp / name, cfg, name=name)
    if metrics:  # /metrics on a free loopback port, recorded in the workers table
        w.config["worker"].update(metrics_port=0, metrics_address="127.0.0.1")
        w.write_config()
    return w


def storescu(port: int, files: list[Path], calling: str = "MODALITY") -> None:
    subprocess.run(
        [
            dcmtk_tool("storescu"),
            "-aet",
            calling,
            "-aec",
            "DICOM_NODE",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(sql).fetchall()


def jobs(url: str) -> list[tuple]:
    return query(url, SQL_JOBS)


def delivered_sops(files: list[Path]) -> list[str]:
    return [dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]


def cli(node: NodeProcess, *args: str) -> str:
    """Run a ``dicom-node`` admin command against the node's configuration."""
    r = subprocess.run(
        [sys.executable, "-m", "dicom_node", *args, "--config", str(node.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout
