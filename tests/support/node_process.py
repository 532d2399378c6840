"""Run ``python -m dicom_node serve`` as a real subprocess for tests and benchmarks."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.ports import accepting, free_port
from tests.support.waiting import ProcessExited, wait_ready

ROOT = Path(__file__).resolve().parents[2]

# tests/conftest.py turns this on: a node that would build the bundled demo model into its
# data dir on first start (~3-4 s each) gets a copy of the package built once per test
# session instead, as tests/ai's CLI tests do. Off for benchmarks (onnx imported at start-up
# or not changes what they measure) and for a node of another checkout (``root``).
SEED_DEMO = False
_demo_cache: Path | None = None


def demo_package() -> Path:
    """The bundled demo package, built once per process into a temporary cache."""
    global _demo_cache
    if _demo_cache is None:
        from ai.bundled import ensure_demo_package

        cache = Path(tempfile.mkdtemp(prefix="dicom-node-demo-"))
        atexit.register(shutil.rmtree, cache, True)
        _demo_cache = ensure_demo_package(cache)
    return _demo_cache


class NodeProcess:
    """A node subprocess on a free loopback port with its own data dir and config."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any] | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        env: dict[str, str] | None = None,
        root: Path | None = None,
        seed_demo: bool | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        # The checkout whose code runs (another one: a benchmark's same-run baseline).
        self.root = Path(root) if root is not None else ROOT
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.data_dir = self.workdir / "data"
        cfg = {
            "bind_address": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.data_dir),
            "disk_reserve_mb": 0,
        }
        cfg.update(config or {})
        # Every node gets its own free HTTP port (the default 8080 would collide).
        http = dict(cfg.get("http") or {})
        http.setdefault("port", free_port())
        cfg["http"] = http
        self.http_port: int = http["port"]
        self.config = cfg
        self.config_path = self.workdir / "node.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.extra_args = extra_args or []
        self.preexec_fn = preexec_fn  # e.g. resource limits for a real fault
        self.env = env or {}  # added to the environment (e.g. DICOM_NODE_TWEAKS)
        self.log_path = self.workdir / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # Whether start() copies in the session's demo build (None: SEED_DEMO decides).
        self.seed_demo = SEED_DEMO if seed_demo is None else seed_demo

    @property
    def index(self) -> Path | str:
        """Where its index is: the database URL if one is configured, else the data dir
        (whose ``index.sqlite`` is the default)."""
        return self.config.get("database_url") or self.data_dir

    @property
    def http_url(self) -> str:
        """The base URL of its HTTP port."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _seed_demo(self) -> None:
        """Copy the session's demo build where this node would build its own."""
        models = self.config.get("models") or {}
        if not self.seed_demo or self.root != ROOT or models.get("bundled") is False:
            return
        package = demo_package()
        target = Path(models.get("models_dir") or self.data_dir / "models") / package.name
        if not target.exists():
            shutil.copytree(package, target)

    def start(self, timeout: float = 30.0) -> NodeProcess:
        """Start the node and wait until it accepts connections."""
        self._seed_demo()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        if self.root != ROOT:
            env["PYTHONPATH"] = str(self.root)
        log = self.log_path.open("ab")
        earlier = len(self.log())  # a restarted node appends to the same log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dicom_node",
                "serve",
                "--config",
                str(self.config_path),
                *self.extra_args,
            ],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec_fn,
        )
        log.close()
        ports = [self.port] + ([self.http_port] if self.config["http"].get("enabled", True) else [])

        def up() -> bool:  # both ports accept, and the banner says all is up
            banner = "dicom-node is running" in self.log()[earlier:]
            return banner and all(accepting(p) for p in ports)

        try:
            wait_ready(self.proc, up, timeout, describe=lambda: "no start-up banner")
        except ProcessExited:
            raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log()}") from None
        except TimeoutError:
            self.kill()
            raise
        return self

    def log(self) -> str:
        """Everything the node printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (kill -9 if it does not stop in time); return the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def peak_rss_kb(self) -> int:
        """VmHWM of the running node, in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_node(workdir: Path, config: dict[str, Any] | None = None) -> Iterator[NodeProcess]:
    """A started node for a fixture to yield; it must stop cleanly afterwards."""
    proc = NodeProcess(workdir, config)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"node did not stop cleanly ({code}):\n{proc.log()}"
