"""A configuration reload on a running node: settings that only a restart applies keep
their running value until then, and every reload says so again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
import yaml

from dicom_node.settings.root import NodeConfig, keep_running
from tests.support.node_process import ROOT, NodeProcess
from tests.support.waiting import wait_until

RELOADED = "configuration reloaded"


def test_reload_keeps_who_runs_jobs_until_a_restart(tmp_path: Path) -> None:
    cfg = {"models": {"bundled": False}, "jobs": {"workers": 2}}
    with NodeProcess(tmp_path / "node", cfg) as node:
        data = yaml.safe_load(node.config_path.read_text())
        data["jobs"] = {
            "executor": "celery",
            "broker_url": "redis://127.0.0.1:9/0",
            "workers": 3,
            "lease_seconds": 300,  # applies live
        }
        node.config_path.write_text(yaml.safe_dump(data))
        restart = "restart to apply: jobs.executor, jobs.broker_url, jobs.workers"

        r = requests.post(f"{node.http_url}/api/config/reload", timeout=10)
        assert r.status_code == 202, r.text
        wait_until(lambda: node.log().count(RELOADED) == 1, timeout=30, describe=node.log)
        [line] = [x for x in node.log().splitlines() if RELOADED in x]
        assert restart in line, line

        # The same file again, from the CLI: the running executor is still the embedded
        # one with 2 workers, so the restart is still needed and the log says so again
        # (it said nothing once the reload had taken the new values as running ones).
        cli = subprocess.run(
            [sys.executable, "-m", "dicom_node", "config", "reload", "-c", str(node.config_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        wait_until(lambda: node.log().count(RELOADED) == 2, timeout=30, describe=node.log)
        second = [x for x in node.log().splitlines() if RELOADED in x][1]
        assert restart in second, second
        assert "apply only after a restart: jobs.executor" in node.log()


def test_keep_running_sets_back_nested_settings() -> None:
    running = NodeConfig()
    new = NodeConfig.model_validate(
        {"http": {"port": 9999}, "jobs": {"executor": "celery", "workers": 5, "lease_seconds": 300}}
    )
    paths = ("port", "http", "jobs.executor", "jobs.broker_url", "jobs.workers")
    kept, changed = keep_running(new, running, paths)
    assert changed == ["http", "jobs.executor", "jobs.workers"]
    assert (kept.http, kept.jobs.executor, kept.jobs.workers) == (
        running.http,
        "embedded",
        2,
    )
    assert kept.jobs.lease_seconds == 300  # not restart-only: it applies
