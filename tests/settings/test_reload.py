"""A configuration reload on a running node: settings that only a restart applies keep
their running value until then, and every reload says so again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
import yaml

from dicom_node.settings.root import NodeConfig, keep_running
from tests.http.support import inprocess_node
from tests.support.node_process import ROOT, NodeProcess, demo_package
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

        r = requests.post(f"{node.http_url}/api/config/reload", timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["restart_required"] == ["jobs.executor", "jobs.broker_url", "jobs.workers"]
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


DEMO = "demo-cxr-densenet121"
REFUSED = "configuration reload refused"


def _rewrite(node: NodeProcess, **sections: object) -> None:
    """The node's file with ``sections`` replaced (``None``: removed)."""
    data = yaml.safe_load(node.config_path.read_text())
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    node.config_path.write_text(yaml.safe_dump(data))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_reload_checks_routes_against_the_models_the_node_runs(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "node", {"models": {"bundled": False}}) as node:
        url = f"{node.http_url}/api/config/reload"
        # The file would load the bundled demo, but models load only at a restart: the
        # running node has none, so a route naming the demo would never run.
        demo_route = {"name": "cxr", "action": "infer", "models": [DEMO]}
        _rewrite(node, models={"bundled": True}, routes=[demo_route])
        r = requests.post(url, timeout=60)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"] == [f"routes[0].models[0]: unknown model {DEMO!r}"]

        # executor: celery in the file would leave models to the workers, but this node
        # runs its jobs itself until a restart: its own models are what routes may use.
        route = {"name": "elsewhere", "action": "infer", "models": ["nowhere"]}
        _rewrite(node, models={"bundled": False}, jobs={"executor": "celery"}, routes=[route])
        r = requests.post(url, timeout=60)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == ["routes[0].models[0]: unknown model 'nowhere'"]

        # SIGHUP (from the CLI, whose own check is of the file's fields) refuses it too.
        cli = _cli("config", "reload", "-c", str(node.config_path))
        assert cli.returncode == 0, cli.stderr
        wait_until(lambda: node.log().count(REFUSED) == 3, timeout=30, describe=node.log)
        assert "routes[0].models[0]: unknown model 'nowhere'" in node.log()
        assert RELOADED not in node.log()  # nothing of the three was applied

        _rewrite(node, jobs=None, routes=[{"name": "drop", "action": "discard"}])
        r = requests.post(url, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["restart_required"] == []
        assert node.log().count(RELOADED) == 1


def test_a_reload_accepts_routes_to_a_model_the_node_runs(tmp_path: Path) -> None:
    package = {"bundled": False, "packages": [str(demo_package())]}
    with NodeProcess(tmp_path / "node", {"models": package}) as node:
        # The file no longer names the package, but the running node keeps its models
        # until a restart: the route runs (and the answer says what needs one).
        route = {"name": "cxr", "action": "infer", "models": [DEMO]}
        _rewrite(node, models={"bundled": False}, routes=[route])
        r = requests.post(f"{node.http_url}/api/config/reload", timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["restart_required"] == ["models"]
        [line] = [x for x in node.log().splitlines() if RELOADED in x]
        assert "1 route(s)" in line and "restart to apply: models" in line, line

        # `config check` is of the file itself: its models section has no such package.
        check = _cli("config", "check", str(node.config_path))
        assert check.returncode == 1
        assert f"routes[0].models[0]: unknown model {DEMO!r}" in check.stderr


def test_a_node_without_a_file_to_read_again_says_so(tmp_path: Path) -> None:
    # A node embedded in a process (not `serve`) has no file to read again; the reload
    # used to signal SIGHUP to that process, whose default action ends it.
    with inprocess_node(tmp_path) as node:
        r = requests.post(f"http://127.0.0.1:{node.config.http.port}/api/config/reload", timeout=30)
        assert r.status_code == 409, r.text
        assert "no configuration to read again" in r.json()["detail"]
