"""Node + Celery workers as separate processes with separate data dirs, on a real
PostgreSQL and a real redis-server, results to a real DCMTK storescp."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from dicom_node import synthetic
from dicom_node.jobs.broker import TASK, make_app, queue_for
from tests.scale.cluster import (
    cli,
    delivered_sops,
    jobs,
    model_packages,
    node_config,
    query,
    storescu,
    worker,
)
from tests.support.node_process import NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_for

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


def _worker_metrics(url: str, worker_name: str) -> dict[str, float]:
    """From the worker's own /metrics: finished jobs, and (summed over models) the deliver
    stage's observations, the inputs its batches held, the scores it observed and the
    objects it froze out of the garbage collector's reach."""
    [(metrics_url,)] = query(url, f"select metrics_url from workers where name = '{worker_name}'")
    text = requests.get(metrics_url, timeout=10).text
    out = {"done": 0.0, "delivered": 0.0, "batched": 0.0, "scores": 0.0, "frozen": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "dicom_node_job_attempts_finished_total" and s.labels["state"] == "done":
                out["done"] += s.value
            elif s.name == "dicom_node_job_stage_seconds_count" and s.labels["stage"] == "deliver":
                out["delivered"] += s.value
            elif s.name == "dicom_node_inference_batch_size_sum":
                out["batched"] += s.value
            elif s.name == "dicom_node_label_score_count":
                out["scores"] += s.value
            elif s.name == "dicom_node_gc_frozen_objects":
                out["frozen"] = s.value
    return out


def test_burst_exactly_once_and_models_stay_with_their_workers(tmp_path, postgres, broker):
    """20 studies (14 CR, 6 DX), worker A has only tiny-cr, worker B both: every job runs
    once and is delivered once; no DX job reaches A; a job for a model no worker has
    waits, visibly."""
    url = postgres.create_database()
    pk = model_packages(tmp_path / "models")
    studies = _studies(tmp_path / "in", 14, 6)
    waiter = synthetic.write_files(
        [synthetic.make_cr(seed=99, rows=64, cols=64)], tmp_path / "waiter"
    )
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        cfg = node_config(url, broker.url, pacs.port)
        node = NodeProcess(tmp_path / "node", config=cfg)
        a = worker(tmp_path, "wa", cfg, [pk["tiny-cr"]], metrics=True)
        b = worker(tmp_path, "wb", cfg, [pk["tiny-cr"], pk["tiny-dx"]], metrics=True)
        with node, a, b:
            at_start = {name: _worker_metrics(url, name)["frozen"] for name in ("wa", "wb")}
            for files in studies:
                storescu(node.port, files)
            storescu(node.port, waiter, calling="WAITER")
            logs = lambda: node.log() + a.log() + b.log()  # noqa: E731
            wait_for(
                lambda: sum(r[1] == "done" for r in jobs(url)) == 20, 120, "20 jobs done", logs
            )
            wait_for(
                lambda: "waits: no live worker has model(s) absent-model" in node.log(),
                30,
                "the waiting job's log line",
                logs,
            )
            time.sleep(2)  # a duplicate run or send would show up here
            rows = jobs(url)
            shown = cli(
                node, "jobs", "show", str(next(r[0] for r in rows if r[4] == ["absent-model"]))
            )
            listed = cli(node, "workers", "list")
            scraped = {name: _worker_metrics(url, name) for name in ("wa", "wb")}
        files = pacs.received()
    done = [r for r in rows if r[1] == "done"]
    # Each worker's own /metrics counts the jobs it finished, their deliver stage, the
    # images its batches held (one per single-image study) and one score per label each.
    for name in ("wa", "wb"):
        n = sum(r[3] == name for r in done)
        got = scraped[name]
        assert (got["done"], got["delivered"], got["batched"]) == (n, n, n), (name, got)
        assert got["scores"] == 2 * n, (name, got)  # tiny models: two labels each
        # frozen once ready, and again after its first job (what that job loaded)
        assert at_start[name] > 1000, at_start
        assert (got["frozen"] > at_start[name]) == (n > 0), (name, got, at_start)
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


def test_worker_killed_mid_job_another_completes_it_delivered_once(tmp_path, postgres, broker):
    """kill -9 the worker holding a job (inside inference: the batcher waits 3 s): its
    claim expires after the lease, the sweeper publishes the job again, the other worker
    completes it; the results go out once; the dead worker's claim is on record."""
    url = postgres.create_database()
    pk = model_packages(tmp_path / "models")
    study = _studies(tmp_path / "in", 1, 0)[0]
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        cfg = node_config(url, broker.url, pacs.port)
        node = NodeProcess(tmp_path / "node", config=cfg)
        w = {n: worker(tmp_path, n, cfg, [pk["tiny-cr"]], max_wait_ms=3000) for n in ("w1", "w2")}
        with node, w["w1"], w["w2"]:
            logs = lambda: node.log() + w["w1"].log() + w["w2"].log()  # noqa: E731
            storescu(node.port, study)
            wait_for(lambda: [r[1] for r in jobs(url)] == ["running"], 60, "a running job", logs)
            job_id, _, _, holder, _, _ = jobs(url)[0]
            other = "w2" if holder == "w1" else "w1"
            time.sleep(0.5)
            w[holder].kill()
            assert jobs(url)[0][1] == "running" and pacs.received() == []
            wait_for(lambda: jobs(url)[0][1] == "done", 60, "the job done", logs)
            time.sleep(1.5)  # a second delivery would show up here
            rows = jobs(url)
            listed = cli(node, "workers", "list")
            shown = cli(node, "jobs", "show", str(job_id))
        files = pacs.received()
    assert [(r[1], r[2], r[3]) for r in rows] == [("done", 2, other)], rows
    assert f"job {job_id} was running when its worker {holder} stopped" in node.log()
    sops = delivered_sops(files)
    assert sorted(sops) == sorted(_outputs(url)) and len(set(sops)) == len(sops) > 0
    assert query(url, "select destination, outcome from delivery_attempts") == [
        ("PACS", "delivered")
    ]
    dead = next(line for line in listed.splitlines() if f" {holder} " in line)
    assert "gone (no heartbeat)" in dead and str(job_id) in dead  # its claim, on record
    assert f"held by {other}" in shown


def test_broker_restarted_and_flushed_mid_burst_nothing_lost_nothing_twice(
    tmp_path, postgres, broker
):
    """Redis is killed and restarted empty, then flushed, while jobs wait in it: the
    sweeper publishes the lost messages again; every job runs once, delivers once."""
    url = postgres.create_database()
    pk = model_packages(tmp_path / "models")
    studies = _studies(tmp_path / "in", 12, 0)
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        # Re-publish after 1 s: jobs waiting in an intact queue get a second message too,
        # which the workers' compare-and-set claim must absorb.
        cfg = node_config(url, broker.url, pacs.port, republish_seconds=1)
        node = NodeProcess(tmp_path / "node", config=cfg)
        # The batcher's wait makes each job take ~0.4 s: the burst is still queued.
        a = worker(tmp_path, "wa", cfg, [pk["tiny-cr"]], max_wait_ms=400)
        b = worker(tmp_path, "wb", cfg, [pk["tiny-cr"]], max_wait_ms=400)
        with node, a, b:
            logs = lambda: node.log() + a.log() + b.log()  # noqa: E731
            for files in studies:
                storescu(node.port, files)
            done = lambda: sum(r[1] == "done" for r in jobs(url))  # noqa: E731
            wait_for(lambda: len(jobs(url)) == 12 and done() >= 2, 60, "2 jobs done", logs)
            waiting_at_restart = sum(r[1] == "queued" for r in jobs(url))
            broker.restart()
            wait_for(lambda: done() >= 6, 60, "6 jobs done", logs)
            waiting_at_flush = sum(r[1] == "queued" for r in jobs(url))
            broker.flush()
            wait_for(lambda: done() == 12, 90, "12 jobs done", logs)
            # A message delivered twice: the same job ids published again, by hand.
            app = make_app(broker.url)
            again = [r[0] for r in jobs(url)[:3]]
            for job_id in again:
                app.send_task(TASK, args=[job_id], queue=queue_for(["tiny-cr"]))
            wait_for(
                lambda: all(f"job {j}: message dropped" in a.log() + b.log() for j in again),
                30,
                "the duplicates dropped",
                logs,
            )
            time.sleep(2)  # a second run or delivery would show up here
            rows = jobs(url)
        files = pacs.received()
    assert waiting_at_restart > 0 and waiting_at_flush > 0  # messages were lost
    assert "re-published" in node.log()
    assert all(r[1] == "done" and r[2] == 1 for r in rows), rows  # each ran once
    sops = delivered_sops(files)
    assert Counter(sops) == Counter(_outputs(url))
    assert all(n == 1 for n in Counter(sops).values())
    assert [r[0] for r in query(url, "select count(*) from delivery_attempts")] == [12]


def test_worker_without_shared_filesystem_fetches_inputs_by_wado_rs(tmp_path, postgres, broker):
    """worker.inputs: wado-rs with a read token: each input comes from the node's WADO-RS
    into the worker's spool (emptied after the job); results delivered once each."""
    url = postgres.create_database()
    pk = model_packages(tmp_path / "models")
    studies = _studies(tmp_path / "in", 3, 0)
    token = "worker-read-token-0123456789"
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        cfg = node_config(url, broker.url, pacs.port)
        cfg["http"] = {"tokens": [{"name": "workers", "token": token, "role": "read"}]}
        node = NodeProcess(tmp_path / "node", config=cfg)
        with node:
            w = worker(tmp_path, "ww", cfg, [pk["tiny-cr"]])
            w.config["worker"].update(inputs="wado-rs", node_url=node.http_url, node_token=token)
            w.write_config()
            with w:
                logs = lambda: node.log() + w.log()  # noqa: E731
                for files in studies:
                    storescu(node.port, files)
                wait_for(
                    lambda: sum(r[1] == "done" for r in jobs(url)) == 3, 90, "3 jobs done", logs
                )
                time.sleep(1)
                metrics = requests.get(node.http_url + "/metrics", timeout=10).text
        files = pacs.received()
    assert w.log().count("fetched 1 instance(s) via WADO-RS") == 3
    assert not (w.workdir / "data" / "fetched").exists()  # spool emptied after each job
    wado = [
        s
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "dicom_node_http_requests_total"
        and s.labels["method"] == "GET"
        and s.labels["route"].endswith("/instances/{instance}")
        and s.labels["status"] == "200"
    ]
    assert sum(s.value for s in wado) == 3, wado
    sops = delivered_sops(files)
    assert Counter(sops) == Counter(_outputs(url)) and len(set(sops)) == len(sops)
