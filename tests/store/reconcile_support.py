"""Helpers of the reconciliation tests: a node's config (and the origin tests' node), the
index's rows read and changed directly (what a power cut leaves), the reconcile metric
and CLI."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

from dicom_node.db import sqlite_url
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess

SUMMARY = "store reconciled:"


def reconcile_config(index_url: str | None, quiet: float, **more: object) -> dict[str, object]:
    """A node config on ``index_url`` with one AE title quiet for ``quiet`` s."""
    cfg: dict[str, object] = {
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": quiet}],
        "models": {"bundled": False},
        **more,
    }
    if index_url and not index_url.startswith("sqlite"):
        cfg["database_url"] = index_url
    return cfg


# The origin tests' node: a DIMSE AE title of each grouping and a STOW-RS web source.
ORIGIN_TITLES = [{"ae_title": "DICOM_NODE"}, {"ae_title": "BYSERIES", "group_by": "series"}]
WEB_SOURCE = {"web_source": {"ae_title": "WEBSRC", "quiet_seconds": 120}}


def origin_node(workdir: Path, port: int | None = None) -> NodeProcess:
    """A node in ``workdir`` with :data:`ORIGIN_TITLES` and :data:`WEB_SOURCE`, each
    quiet for 120 s (its groups stay open through a test)."""
    titles = [t | {"quiet_seconds": 120} for t in ORIGIN_TITLES]
    cfg = reconcile_config(None, 120, ae_titles=titles, http=WEB_SOURCE)
    return NodeProcess(workdir, cfg, port=port)


def execute_sql(index: Path | str, *statements: tuple[str, dict]) -> None:
    """Run ``statements`` (SQL, parameters) in one transaction on the index."""
    url = index if isinstance(index, str) else sqlite_url(Path(index) / "index.sqlite")
    engine = create_engine(url)
    try:
        with engine.begin() as c:
            for sql, params in statements:
                c.execute(text(sql), params)
    finally:
        engine.dispose()


def instance_rows(index: Path | str) -> dict[str, dict]:
    """Every instance row by SOP Instance UID, less its id."""
    url = index if isinstance(index, str) else sqlite_url(Path(index) / "index.sqlite")
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(text("SELECT * FROM instances"))]
    finally:
        engine.dispose()
    for r in rows:
        del r["id"]
        if isinstance(r["received_at"], str):  # SQLite through text(): ISO text
            r["received_at"] = dt.datetime.fromisoformat(r["received_at"])
    return {r["sop_instance_uid"]: r for r in rows}


def lose_last_rows(index: Path | str, n: int) -> list[str]:
    """Remove the ``n`` newest instance rows and their share of their group: what a
    power cut before the WAL reached the disk leaves. Returns their SOP UIDs."""
    lost = query(
        index,
        "SELECT id, sop_instance_uid, group_id, size FROM instances ORDER BY id DESC LIMIT :n",
        n=n,
    )
    execute_sql(
        index,
        *[
            (
                "UPDATE groups SET instance_count = instance_count - 1, "
                "total_bytes = total_bytes - :size WHERE id = :gid",
                {"size": size, "gid": gid},
            )
            for _, _, gid, size in lost
        ],
        *[("DELETE FROM instances WHERE id = :id", {"id": i}) for i, _, _, _ in lost],
    )
    return [sop for _, sop, _, _ in lost]


def reconciled_metric(node: NodeProcess, outcome: str) -> float:
    """The node's reconciled-instances counter for ``outcome``."""
    with urllib.request.urlopen(f"{node.http_url}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    name = f'dicom_node_reconciled_instances_total{{outcome="{outcome}"}}'
    for line in body.splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    return 0.0


def reconcile_cli(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``dicom-node store reconcile`` with ``args`` on the node's config."""
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", "store", "reconcile", "-c", str(node.config_path)]
        + list(args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
