"""Free loopback ports for peers started inside tests."""

from __future__ import annotations

import socket

from tests.support.waiting import wait_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Block until something accepts connections on ``host:port``."""
    wait_until(
        lambda: accepting(port, host),
        timeout,
        interval=0.05,
        describe=lambda: f"nothing listening on {host}:{port}",
    )


def accepting(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts a connection on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
