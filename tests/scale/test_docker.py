"""docker/: what can be checked without a Docker engine. Every file the compose file and
the Dockerfiles name exists, every dicom-node config they mount validates with
`dicom-node config check`, Prometheus scrapes the ports the workers serve, and the
image's default command starts a node when run directly here with the same config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.dcmtk import dcmtk_tool
from tests.support.node_process import ROOT
from tests.support.ports import free_port, wait_for_port

DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
OUR_IMAGES = {"Dockerfile", "Dockerfile.cuda"}


def _binds(service: dict) -> dict[str, Path]:
    """Container path -> host file, for the service's bind mounts of files in docker/."""
    out = {}
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith("./"):
            out[dst] = DOCKER / src
    return out


def _dicom_node_services() -> dict[str, dict]:
    return {
        name: s
        for name, s in COMPOSE["services"].items()
        if Path(s.get("build", {}).get("dockerfile", "")).name in OUR_IMAGES
    }


def test_compose_names_only_files_that_exist() -> None:
    assert {
        "orthanc",
        "dicom-node",
        "postgres",
        "redis",
        "worker-1",
        "worker-2",
        "prometheus",
    } <= set(COMPOSE["services"])
    for name, service in COMPOSE["services"].items():
        for dst, src in _binds(service).items():
            assert src.is_file(), f"{name}: {src} (mounted at {dst}) does not exist"
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name
        for dep in service.get("depends_on", []):
            assert dep in COMPOSE["services"], f"{name} depends on unknown {dep}"
    named = {
        v.split(":")[0]
        for s in COMPOSE["services"].values()
        for v in s.get("volumes", [])
        if not v.startswith(".")
    }
    assert named <= set(COMPOSE["volumes"])


@pytest.mark.parametrize("dockerfile", sorted(OUR_IMAGES))
def test_dockerfile_copies_exist_and_default_config_is_installed(dockerfile: str) -> None:
    text = (DOCKER / dockerfile).read_text()
    for src in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"{dockerfile}: COPY {part}"
    cmd = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))
    config = cmd[cmd.index("--config") + 1]
    copied = dict(reversed(m) for m in re.findall(r"^COPY (\S+) (\S+)$", text, re.M))
    assert config in copied, f"{dockerfile}: the default command's {config} is not in the image"


def _config_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", "config", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_every_mounted_node_config_validates() -> None:
    services = _dicom_node_services()
    assert {"dicom-node", "worker-1", "worker-2", "worker-gpu"} <= set(services)
    for name, service in services.items():
        command = service["command"]
        config = _binds(service)[command[command.index("--config") + 1]]
        r = _config_check(config)
        assert r.returncode == 0 and "OK" in r.stdout, (name, r.stdout, r.stderr)
        cfg = yaml.safe_load(config.read_text())
        assert cfg["jobs"]["executor"] == "celery", name
        # Results go back to Orthanc, by the name compose gives it.
        assert any(d["host"] == "orthanc" and d["port"] == 4242 for d in cfg["destinations"]), name


def test_prometheus_scrapes_each_worker_on_its_metrics_port() -> None:
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    port = yaml.safe_load((DOCKER / "worker.compose.yaml").read_text())["worker"]["metrics_port"]
    node_http = yaml.safe_load((DOCKER / "node.compose.yaml").read_text())["http"]["port"]
    assert targets == {f"worker-1:{port}", f"worker-2:{port}", f"dicom-node:{node_http}"}


def test_workers_fetch_by_wado_rs_with_a_token_the_node_grants() -> None:
    node = yaml.safe_load((DOCKER / "node.compose.yaml").read_text())
    worker = yaml.safe_load((DOCKER / "worker.compose.yaml").read_text())["worker"]
    assert worker["inputs"] == "wado-rs"
    assert worker["node_url"] == f"http://dicom-node:{node['http']['port']}"
    assert any(
        t["token"] == worker["node_token"] and t["role"] in ("read", "admin")
        for t in node["http"]["tokens"]
    )


def test_image_default_command_starts_a_node_here(tmp_path: Path) -> None:
    """The Dockerfile's CMD with its own config, run directly (data dir and port moved to
    this machine's free ones)."""
    text = (DOCKER / "Dockerfile").read_text()
    cmd = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))
    cmd[cmd.index("--data-dir") + 1] = str(tmp_path / "data")
    cmd[cmd.index("--config") + 1] = str(DOCKER / "node.default.yaml")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicom_node", *cmd, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, timeout=120)
        echo = subprocess.run(
            [dcmtk_tool("echoscu"), "-aec", "DICOM_NODE", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert echo.returncode == 0, echo.stderr
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "dicom-node is running" in out.decode()
