"""Run ``python -m dicom_node worker`` as a real subprocess (own data dir and config)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.node_process import ROOT
from tests.support.waiting import ProcessExited, wait_ready


class WorkerProcess:
    """A worker subprocess; ``start()`` returns once it consumes from the broker."""

    def __init__(self, workdir: Path, config: dict[str, Any], name: str) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        cfg = {
            "data_dir": str(self.workdir / "data"),
            "disk_reserve_mb": 0,
            "worker": {"name": name, "heartbeat_seconds": 1},
        }
        cfg.update(config)
        self.config = cfg
        self.config_path = self.workdir / "worker.yaml"
        self.write_config()
        self.log_path = self.workdir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicom_node", "worker", "--config", str(self.config_path)],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            wait_ready(self.proc, lambda: "ready: models" in self.log(), timeout, interval=0.1)
        except ProcessExited:
            raise RuntimeError(
                f"worker exited with {self.proc.returncode}:\n{self.log()}"
            ) from None
        except TimeoutError:
            self.kill()
            raise TimeoutError(f"worker {self.name} not ready:\n{self.log()[-3000:]}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
