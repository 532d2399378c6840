"""Node + Celery workers as separate processes with separate data dirs, on a real
PostgreSQL and a real redis-server, results to a real DCMTK storescp."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from dicom_node import synthetic
from tests.scale.cluster import (
    cli,
    delivered_sops,
    jobs,
    model_packages,
    node_config,
    query,
    storescu,
    wait_until,
    worker,
)
from tests.support.node_process import NodeProcess
from tests.support.storescp import StoreSCP

pytestmark = [pytest.mark.peer, pytest.mark.slow]


def _studies(tmp: Path, n_cr: int, n_dx: int) -> list[list[Path]]:
    out = []
    for i in range(n_cr + n_dx):
        make = synthetic.make_cr if i < n_cr else synthetic.make_dx
        ds = make(seed=100 + i, rows=64, cols=64)
        out.append(synthetic.write_files([ds], tmp / f"s{i}"))
    return out


def _outputs(url: str) -> list[str]:
    return [r[0] for r in query(url, "select sop_instance_uid from job_outputs")]


def test_burst_exactly_once_and_models_stay_with_their_workers(tmp_path, pg, broker):
    """20 studies (14 CR, 6 DX), worker A has only tiny-cr, worker B both: every job runs
    once and is delivered once; no DX job reaches A; a job for a model no worker has
    waits, visibly."""
    url = pg.create_database()
    pk = model_packages(tmp_path / "models")
    studies = _studies(tmp_path / "in", 14, 6)
    waiter = synthetic.write_files([synthetic.make_cr(seed=99, rows=64, cols=64)],
                                   tmp_path / "waiter")
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        cfg = node_config(url, broker.url, pacs.port)
        node = NodeProcess(tmp_path / "node", config=cfg)
        a = worker(tmp_path, "wa", cfg, [pk["tiny-cr"]])
        b = worker(tmp_path, "wb", cfg, [pk["tiny-cr"], pk["tiny-dx"]])
        with node, a, b:
            for files in studies:
                storescu(node.port, files)
            storescu(node.port, waiter, calling="WAITER")
            logs = lambda: node.log() + a.log() + b.log()  # noqa: E731
            wait_until(lambda: sum(r[1] == "done" for r in jobs(url)) == 20, 120,
                       "20 jobs done", logs)
            wait_until(lambda: "waits: no live worker has model(s) absent-model"
                       in node.log(), 30, "the waiting job's log line", logs)
            time.sleep(2)  # a duplicate run or send would show up here
            rows = jobs(url)
            shown = cli(node, "jobs", "show", str(next(r[0] for r in rows
                                                       if r[4] == ["absent-model"])))
            listed = cli(node, "workers", "list")
        files = pacs.received()
    done = [r for r in rows if r[1] == "done"]
    assert len(done) == 20 and all(r[2] == 1 for r in done), rows  # each ran once
    waiting = [r for r in rows if r[4] == ["absent-model"]]
    assert [(r[1], r[2], r[3]) for r in waiting] == [("queued", 0, None)]
    assert "waiting: no live worker has model(s) absent-model" in shown
    # Delivered once each: every output arrived, none twice.
    sops = delivered_sops(files)
    assert Counter(sops) == Counter(_outputs(url)), (len(sops), len(_outputs(url)))
    assert all(n == 1 for n in Counter(sops).values())
    assert [r[0] for r in query(url, "select count(*) from delivery_attempts")] == [20]
    # Worker A never received a DX job: all DX jobs were claimed by B.
    dx = [r for r in done if r[4] == ["tiny-dx"]]
    assert len(dx) == 6 and {r[3] for r in dx} == {"wb"}
    for r in dx:
        assert f"job {r[0]}:" not in a.log() and f"job {r[0]} " not in a.log()
    assert {r[3] for r in done if r[4] == ["tiny-cr"]} <= {"wa", "wb"}
    assert "wa" in listed and "wb" in listed and "tiny-dx" in listed
