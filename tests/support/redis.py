"""A real Redis server for tests, from Debian's ``redis-server`` package.

    with RedisServer(tmp_path / "redis") as redis:   # free loopback port, no persistence
        redis.url                                     # redis://127.0.0.1:PORT/0
        redis.restart()                               # same port; everything in it is gone
        redis.flush()                                 # FLUSHALL on the running server

No persistence (no RDB, no AOF): a restart loses every message, as a broker crash
without persistence or an operator's FLUSHALL would.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.support.logged import LoggedProcess
from tests.support.ports import free_port, wait_for_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def available() -> str | None:
    """Why a server cannot be started here, or None if it can."""
    if not Path(REDIS_SERVER).exists():
        return "redis-server not installed (scripts/install-system-deps.sh)"
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return "celery/redis not installed (scripts/install.sh dev scale)"
    return None


class RedisServer(LoggedProcess):
    """redis-server on 127.0.0.1, a free port, data in ``workdir``."""

    label = "redis"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "no",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=timeout)
        return self

    def stop(self) -> None:
        self._terminate(5)

    def kill(self) -> None:
        """kill -9: whatever it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._terminate(0)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Kill and start again on the same port (empty: no persistence)."""
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)

    def flush(self) -> None:
        with self.client() as c:
            c.flushall()

    def __exit__(self, *exc: object) -> None:
        self.stop()
