"""/metrics and the destinations' status after a real job: a CR study (two images) sent
with storescu runs through the bundled demo model and is delivered to a DCMTK storescp;
a second rule forwards the images to a destination that is down (a closed port).

One node serves every test of this module; the scrape, the Prometheus query and the
status API all read what that one job and the failing forward left behind.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ai.bundled.cache import DEMO_NAME, demo_manifest
from dicom_node import synthetic
from tests.support import prometheus
from tests.support.dcmtk import storescu
from tests.support.index import attempts, job_rows, query
from tests.support.node_process import NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer

IMAGES = 2


@dataclass
class Run:
    node: NodeProcess
    pacs: StoreSCP
    study_uid: str
    infer_job: int
    forward_job: int


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released, never listened to)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("pipeline-metrics")
    study_uid = synthetic.new_uid()
    files = synthetic.write_files(
        [synthetic.make_cr(seed=70 + i, study_uid=study_uid) for i in range(IMAGES)],
        tmp / "study",
    )
    with StoreSCP(tmp / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        cfg = {
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
            "results": {"heatmaps": "top"},
            "destinations": [
                {
                    "name": "PACS",
                    "kind": "dimse",
                    "ae_title": "PACS",
                    "host": "127.0.0.1",
                    "port": pacs.port,
                },
                {
                    "name": "DOWN",
                    "kind": "dimse",
                    "ae_title": "DOWN",
                    "host": "127.0.0.1",
                    "port": _closed_port(),
                },
            ],
            "routes": [
                {
                    "name": "cxr",
                    "models": [DEMO_NAME],
                    "destinations": ["PACS"],
                    "continue": True,
                },
                {"name": "copy", "action": "forward", "destinations": ["DOWN"]},
            ],
            "jobs": {
                "retry": {
                    "base_s": 1,
                    "factor": 1,
                    "cap_s": 1,
                    "jitter": 0,
                    "max_attempts": 1000,
                }
            },
        }
        with NodeProcess(tmp / "node", cfg) as node:
            storescu(node.port, files, calling="MODALITY", check=True)

            def settled() -> bool:
                rows = {r[0]: r[1] for r in job_rows(node.data_dir)}
                failed = [a for a in attempts(node.data_dir) if a[1:3] == ("DOWN", "transient")]
                return "done" in rows.values() and len(failed) >= 2

            wait_until(settled, timeout=120, interval=0.3, describe=lambda: node.log()[-3000:])
            rows = job_rows(node.data_dir)
            done = [r[0] for r in rows if r[1] == "done"]
            other = [r[0] for r in rows if r[1] != "done"]
            assert len(done) == 1 and len(other) == 1, rows
            yield Run(node, pacs, study_uid, done[0], other[0])


def _outputs(run: Run) -> int:
    """How many result objects the inference job wrote (and sent)."""
    [(n,)] = query(
        run.node.data_dir, "select count(*) from job_outputs where job_id = :j", j=run.infer_job
    )
    return n


def _scrape(node: NodeProcess) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    text = requests.get(node.http_url + "/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_pipeline_metrics_count_the_job(run: Run) -> None:
    requests.get(f"{run.node.http_url}/api/jobs/{run.infer_job}", timeout=10).raise_for_status()
    samples = _scrape(run.node)

    # Scores: one observation per label per image, each a probability.
    labels = [spec.name for spec in demo_manifest("0").output.labels]
    for label in labels:
        count = _value(samples, "dicom_node_label_score_count", model=DEMO_NAME, label=label)
        total = _value(samples, "dicom_node_label_score_sum", model=DEMO_NAME, label=label)
        top = _value(
            samples, "dicom_node_label_score_bucket", model=DEMO_NAME, label=label, le="1.0"
        )
        assert count == IMAGES and top == IMAGES, label
        assert 0.0 <= total <= count
    scored = [k for k in samples if k[0] == "dicom_node_label_score_count"]
    assert len(scored) == len(labels)

    # Stages: the one inference job went through each once.
    for stage in ("queue", "infer", "write", "deliver"):
        n = _value(samples, "dicom_node_job_stage_seconds_count", model=DEMO_NAME, stage=stage)
        assert n == 1, stage
    infer_s = _value(samples, "dicom_node_job_stage_seconds_sum", model=DEMO_NAME, stage="infer")
    assert infer_s > 0
    # The failing forward job waited in the queue (each attempt) but never delivered.
    assert (
        _value(samples, "dicom_node_job_stage_seconds_count", model="(forward)", stage="queue") >= 2
    )
    assert (
        _value(samples, "dicom_node_job_stage_seconds_count", model="(forward)", stage="deliver")
        == 0
    )

    # Last instance -> results accepted by PACS: once, and after at least the quiet period.
    trip = dict(model=DEMO_NAME, destination="PACS")
    assert _value(samples, "dicom_node_last_instance_to_delivered_seconds_count", **trip) == 1
    assert _value(samples, "dicom_node_last_instance_to_delivered_seconds_sum", **trip) >= 1.0

    # Batches: every image went through ONNX Runtime once.
    assert _value(samples, "dicom_node_inference_batch_size_sum", model=DEMO_NAME) == IMAGES
    assert _value(samples, "dicom_node_inference_batch_size_count", model=DEMO_NAME) >= 1

    # Delivery outcomes by destination, protocol and outcome.
    sent = _outputs(run)
    assert sent >= 3 and len(run.pacs.received()) == sent
    pacs = dict(destination="PACS", protocol="dimse")
    assert _value(samples, "dicom_node_delivery_attempts_total", outcome="delivered", **pacs) == 1
    assert (
        _value(samples, "dicom_node_delivery_instances_total", outcome="delivered", **pacs) == sent
    )
    down = dict(destination="DOWN", protocol="dimse", outcome="transient")
    assert _value(samples, "dicom_node_delivery_attempts_total", **down) >= 2

    # Queue depth by state; HTTP requests by route template, never by raw path.
    assert _value(samples, "dicom_node_jobs", state="done") == 1
    assert (
        _value(
            samples,
            "dicom_node_http_requests_total",
            method="GET",
            route="/api/jobs/{job_id}",
            status="200",
        )
        >= 1
    )
    values = {v for _, labelset in samples for _, v in labelset}
    assert not any(run.study_uid in v or f"/api/jobs/{run.infer_job}" in v for v in values)


@pytest.mark.skipif(prometheus.available() is not None, reason=str(prometheus.available()))
def test_prometheus_computes_a_stage_latency_quantile(run: Run, tmp_path: Path) -> None:
    query = (
        "histogram_quantile(0.9, sum by (le, stage) "
        f'(dicom_node_job_stage_seconds_bucket{{model="{DEMO_NAME}"}}))'
    )
    with prometheus.Prometheus(tmp_path / "prom", [f"127.0.0.1:{run.node.http_port}"]) as prom:
        series = wait_until(lambda: prom.query(query), timeout=30)
    by_stage = {s["metric"]["stage"]: float(s["value"][1]) for s in series}
    assert set(by_stage) == {"queue", "infer", "write", "deliver"}
    for stage, seconds in by_stage.items():
        assert math.isfinite(seconds) and 0 <= seconds <= 7200, (stage, seconds)


def test_destination_status_shows_deliveries_and_failures(run: Run) -> None:
    base = run.node.http_url + "/api/destinations"
    pacs = requests.get(base + "/PACS/status", timeout=10).json()
    assert pacs["configured"] is True and pacs["window_hours"] == 24
    last = pacs["last_attempt"]
    assert last["outcome"] == "delivered" and last["job_id"] == run.infer_job
    assert last["study_uid"] == run.study_uid and last["error"] is None
    assert (pacs["delivered"], pacs["failed"], pacs["in_progress"]) == (1, 0, 0)
    assert pacs["instances_delivered"] == _outputs(run)
    assert pacs["instances_failed"] == 0
    assert pacs["pending_jobs"] == 0 and pacs["oldest_pending"] is None
    assert pacs["last_error"] is None

    down = requests.get(base + "/DOWN/status", timeout=10).json()
    assert down["delivered"] == 0 and down["failed"] >= 2
    assert down["last_attempt"]["job_id"] == run.forward_job
    assert down["last_attempt"]["study_uid"] == run.study_uid
    assert down["pending_jobs"] == 1
    oldest = down["oldest_pending"]
    assert oldest["job_id"] == run.forward_job and oldest["attempts"] >= 2
    assert oldest["study_uid"] == run.study_uid
    error = down["last_error"]
    assert error["outcome"] == "transient" and error["job_id"] == run.forward_job
    assert error["error"]  # the text the peer (or the network) gave

    every = requests.get(base + "/status", timeout=10).json()
    assert [d["name"] for d in every] == ["PACS", "DOWN"]
    r = requests.get(base + "/NOWHERE/status", timeout=10)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem")
