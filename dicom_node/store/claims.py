"""One holder at a time per key (a SOP Instance UID) within this process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class KeyedLock:
    """A lock per key, created on demand and dropped when nobody holds or waits for it.

    The receive path holds the SOP Instance UID's lock from its duplicate check until
    its index row committed, so two associations sending one instance at once take
    turns: the second sees the first's row and follows the duplicate policy."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Block until no other thread holds ``key``; hold it for the ``with`` block."""
        with self._mutex:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = (threading.Lock(), [0])
            entry[1][0] += 1  # holders and waiters
        lock, users = entry
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
            with self._mutex:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
