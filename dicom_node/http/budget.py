"""Decoded bytes of the conversions and renderings in flight, shared by the whole
process within ``http.max_decoded_mb``: each request's check of the limit passed on
its own, so 8 concurrent retrieves of a 64 MB JPEG grew the node by 1 GB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dicom_node.http.problem import Problem

WAIT_SECONDS = 120.0  # longest a decode waits for others to leave room
MAX_WAITING = 8  # decodes waiting for room; a request that would be one more: 503


class Budget:
    """One decode waits until the others leave room (one alone always runs: larger
    ones are refused before, from the header)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.waiting = 0
        self.changed = threading.Condition()

    def admit(self, max_waiting: int = MAX_WAITING) -> None:
        """Problem 503 (before a response starts) if ``max_waiting`` decodes already
        wait for room: each waiting one holds a worker thread, and the server has 40."""
        with self.changed:
            waiting = self.waiting
        if waiting >= max_waiting:
            raise Problem(
                503,
                "Service Unavailable",
                f"{waiting} decodes are already waiting for room within "
                "http.max_decoded_mb: try again later",
                headers={"Retry-After": "5"},
            )

    @contextmanager
    def hold(self, size: int, limit: int, wait: float = WAIT_SECONDS) -> Iterator[None]:
        """Hold ``size`` bytes of ``limit`` while the block runs; TimeoutError if there
        is no room within ``wait`` seconds."""
        with self.changed:
            self.waiting += 1
            try:
                room = self.changed.wait_for(
                    lambda: self.in_flight == 0 or self.in_flight + size <= limit, wait
                )
            finally:
                self.waiting -= 1
            if not room:
                raise TimeoutError(f"no room to decode within {limit // 2**20} MB")
            self.in_flight += size
        try:
            yield
        finally:
            with self.changed:
                self.in_flight -= size
                self.changed.notify_all()


DECODING = Budget()
