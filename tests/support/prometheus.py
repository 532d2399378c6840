"""Debian's Prometheus server inside tests: scrapes given targets on loopback.

with Prometheus(tmp_path / "prom", targets=["127.0.0.1:8080"]) as prom:
    prom.query('dicom_node_instances_received_total')   # the API's result list
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.logged import LoggedProcess
from tests.support.ports import free_port
from tests.support.waiting import ProcessExited, wait_ready

PROMETHEUS = "prometheus"


def available() -> str | None:
    """Why Prometheus cannot run here, or None."""
    if shutil.which(PROMETHEUS) is None:
        return "prometheus not installed (scripts/install-system-deps.sh)"
    return None


class Prometheus(LoggedProcess):
    """One Prometheus server with a generated config on a free loopback port."""

    label = "Prometheus"

    def __init__(self, workdir: Path, targets: list[str], interval_s: int = 1) -> None:
        self.workdir = Path(workdir)
        self.targets = targets
        self.interval_s = interval_s
        self.port = free_port()
        self.log_path = self.workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Prometheus:
        """Write the config, start the server, wait until it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": f"{self.interval_s}s",
                        "scrape_timeout": f"{self.interval_s}s",
                    },
                    "scrape_configs": [
                        {
                            "job_name": "dicom-node",
                            "metrics_path": "/metrics",
                            "static_configs": [{"targets": self.targets}],
                        }
                    ],
                }
            )
        )
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        try:
            wait_ready(self.proc, self._ready, timeout, interval=0.1)
        except ProcessExited:
            raise RuntimeError(f"Prometheus exited:\n{self.log_tail()}") from None
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"Prometheus not ready within {timeout}s") from None
        return self

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """Terminate the server (kill after 10 s)."""
        self._terminate(10)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API; the ``result`` list."""
        rsp = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        rsp.raise_for_status()
        body = rsp.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def targets_health(self) -> list[str]:
        """The health of each active scrape target (``up``, ``down``, ``unknown``)."""
        rsp = requests.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return [t["health"] for t in rsp["data"]["activeTargets"]]
