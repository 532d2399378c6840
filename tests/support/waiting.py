"""Polling with a deadline, for conditions a test waits on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy; return it.

    On timeout raise :class:`TimeoutError`, with ``describe()`` (e.g. the node's log) in
    the message when given.
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
    """:func:`wait_until` ``cond`` for ``what``; on timeout the message ends with the tail
    of ``log()`` (a node's or a peer's log)."""
    wait_until(
        cond,
        timeout,
        interval=0.2,
        describe=lambda: f"timed out waiting for {what}\n{log()[-3000:]}",
    )
