"""/health, /ready, /metrics and access control, on real node processes; /metrics scraped
by a real Prometheus."""

from __future__ import annotations

import contextlib
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from dicom_node.settings.http import HttpSettings
from tests.http.support import ct_study, multipart, post
from tests.support import prometheus
from tests.support.dcmtk import storescu
from tests.support.node_process import ROOT, NodeProcess
from tests.support.ports import free_port, wait_for_port
from tests.support.waiting import wait_until


def test_health_ready_and_the_banner(node: NodeProcess) -> None:
    assert requests.get(node.http_url + "/health", timeout=10).json() == {"status": "ok"}
    r = requests.get(node.http_url + "/ready", timeout=10)
    assert r.status_code == 200
    assert r.json()["checks"] == {
        "database": "ok",
        "dimse_listener": "ok",
        "store_writable": "ok",
        "disk_reserve": "ok",
        "models": "ok",
    }
    assert (
        f"HTTP: http://127.0.0.1:{node.http_port}" in node.log()
        and "no token configured: bound to 127.0.0.1 only" in node.log()
    )


def test_metrics_count_instances_requests_and_jobs(node: NodeProcess, tmp_path: Path) -> None:
    files = ct_study(tmp_path, n=2, seed=31)
    assert post(node, multipart([f.read_bytes() for f in files])).status_code == 200
    requests.get(node.http_url + "/nowhere", timeout=10)
    text = requests.get(node.http_url + "/metrics", timeout=10).text
    assert 'dicom_node_instances_received_total{called_ae="WEBSRC"}' in text
    assert (
        'dicom_node_http_requests_total{method="POST",route="/dicomweb/studies",status="200"}'
    ) in text
    assert 'route="unmatched",status="404"' in text
    assert 'dicom_node_jobs{state="queued"}' in text and 'state="dead"' in text


def test_not_ready_below_the_disk_reserve(tmp_path: Path) -> None:
    cfg = {"disk_reserve_mb": 2**30, "models": {"bundled": False}}  # a PiB: never free
    with NodeProcess(tmp_path, cfg) as proc:
        r = requests.get(proc.http_url + "/ready", timeout=10)
        assert r.status_code == 503
        checks = r.json()["checks"]
        assert "below the reserve" in checks["disk_reserve"]
        assert checks["database"] == "ok"
        # STOW-RS parts are refused with 0xA700, as C-STOREs are.
        files = ct_study(tmp_path / "ct", n=1, seed=41)
        r = post(proc, multipart([files[0].read_bytes()]))
        assert r.status_code == 409
        assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]


def test_tokens_and_roles(tmp_path: Path) -> None:
    tokens = [
        {"name": "viewer", "token": "r" * 20, "role": "read"},
        {"name": "pacs", "token": "w" * 20, "role": "write"},
    ]
    http = {"tokens": tokens, "open_metrics": False, "open_health": False}
    cfg = {"http": http, "models": {"bundled": False}}
    with NodeProcess(tmp_path, cfg) as proc:
        files = ct_study(tmp_path / "ct", n=1, seed=51)
        body = multipart([files[0].read_bytes()])
        assert post(proc, body).status_code == 401
        assert post(proc, body, headers={"Authorization": "Bearer " + "x" * 20}).status_code == 401
        r = post(proc, body, headers={"Authorization": "Bearer " + "r" * 20})
        assert r.status_code == 403 and "role read" in r.json()["detail"]
        assert post(proc, body, headers={"Authorization": "Bearer " + "w" * 20}).status_code == 200
        read = {"Authorization": "Bearer " + "r" * 20}
        for path in ("/health", "/ready", "/metrics"):  # open by default, closed here
            r = requests.get(proc.http_url + path, timeout=10)
            assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
            assert requests.get(proc.http_url + path, timeout=10, headers=read).status_code == 200
        assert "2 bearer token(s)" in proc.log()


def test_without_tokens_http_listens_on_loopback_only() -> None:
    assert HttpSettings().effective_bind("0.0.0.0") == "127.0.0.1"
    tokened = HttpSettings(tokens=[{"name": "a", "token": "t" * 16}])
    assert tokened.effective_bind("0.0.0.0") == "0.0.0.0"


def test_serve_without_a_config_starts_dimse_and_http(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dicom_node",
            "serve",
            "-d",
            str(tmp_path / "d"),
            "-p",
            str(port),
            "--http-port",
            str(http_port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        wait_for_port(http_port, timeout=60)
        assert requests.get(f"http://127.0.0.1:{http_port}/health", timeout=10).ok
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"HTTP: http://127.0.0.1:{http_port}" in out and "dicom-node stopped" in out


def test_http_port_in_use_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        proc = NodeProcess(
            tmp_path, {"http": {"port": taken.getsockname()[1]}, "models": {"bundled": False}}
        )
        # start() may see the taken port listening before the node gives up
        with contextlib.suppress(RuntimeError):
            proc.start()
        assert proc.proc is not None and proc.proc.wait(60) == 1
        assert "cannot start: OSError" in proc.log() and "Address already in use" in proc.log()


@pytest.mark.skipif(prometheus.available() is not None, reason=str(prometheus.available()))
def test_prometheus_scrapes_the_received_instances_counter(
    node: NodeProcess, tmp_path: Path
) -> None:
    files = ct_study(tmp_path / "ct", n=3, seed=61)
    assert storescu(node.port, files).returncode == 0  # by DIMSE: its own AE label
    with prometheus.Prometheus(tmp_path / "prom", [f"127.0.0.1:{node.http_port}"]) as prom:
        series = wait_until(
            lambda: prom.query('dicom_node_instances_received_total{called_ae="DICOM_NODE"}'),
            timeout=30,
        )
        assert series[0]["metric"]["job"] == "dicom-node"
        assert float(series[0]["value"][1]) >= 3
        assert prom.targets_health() == ["up"]
        # A histogram through PromQL: the 90th percentile of the C-STORE time.
        quantile = prom.query(
            "histogram_quantile(0.9, sum by (le) (dicom_node_store_seconds_bucket))"
        )
        seconds = float(quantile[0]["value"][1])
        assert math.isfinite(seconds) and 0 < seconds <= 10.0
