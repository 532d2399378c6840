"""Decoded bytes of the conversions and renderings in flight, shared by the whole
process within ``http.max_decoded_mb``: each request's check of the limit passed on
its own, so 8 concurrent retrieves of a 64 MB JPEG grew the node by 1 GB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

WAIT_SECONDS = 120.0  # longest a decode waits for others to leave room


class Budget:
    """One decode waits until the others leave room (one alone always runs: larger
    ones are refused before, from the header)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.changed = threading.Condition()

    @contextmanager
    def hold(self, size: int, limit: int, wait: float = WAIT_SECONDS) -> Iterator[None]:
        """Hold ``size`` bytes of ``limit`` while the block runs; TimeoutError if there
        is no room within ``wait`` seconds."""
        with self.changed:
            if not self.changed.wait_for(
                lambda: self.in_flight == 0 or self.in_flight + size <= limit, wait
            ):
                raise TimeoutError(f"no room to decode within {limit // 2**20} MB")
            self.in_flight += size
        try:
            yield
        finally:
            with self.changed:
                self.in_flight -= size
                self.changed.notify_all()


DECODING = Budget()
