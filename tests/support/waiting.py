"""Polling with a deadline, for conditions a test waits on."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ProcessExited(RuntimeError):
    """The process a test waited on exited before it was ready."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy; return it.

    On timeout raise :class:`TimeoutError`, with ``describe()`` (e.g. the node's log) in
    the message when given. An exception ``predicate`` raises ends the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{describe()}" if describe else ""
            raise TimeoutError(f"condition not met in {timeout}s{detail}")
        time.sleep(interval)


def wait_for(cond: Callable[[], object], timeout: float, what: str, log: Callable[[], str]) -> None:
    """Wait until ``cond`` holds, for ``what``.

    On timeout the message ends with the tail of ``log()`` (a node's or a peer's log).
    """
    wait_until(
        cond,
        timeout,
        interval=0.2,
        describe=lambda: f"timed out waiting for {what}\n{log()[-3000:]}",
    )


def wait_ready(
    proc: subprocess.Popen,
    ready: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    describe: Callable[[], str] | None = None,
) -> T:
    """:func:`wait_until` ``ready()`` while ``proc`` runs (a peer or node starting up).

    Raises :class:`ProcessExited` as soon as the process has exited, and
    :class:`TimeoutError` when ``timeout`` passes first.
    """

    def check() -> T:
        if proc.poll() is not None:
            raise ProcessExited(f"process exited with {proc.returncode}")
        return ready()

    return wait_until(check, timeout, interval, describe)
