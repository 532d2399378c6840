"""The store's free-space reserve: the free space of its filesystem, measured at most
every :data:`FREE_SPACE_TTL` seconds, less what was admitted since; a write that would
take it below the reserve is refused with :class:`~dicom_node.store.errors.ReserveError`
(a C-STORE then gets 0xA700), and each change of condition is logged once.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
from pathlib import Path

from dicom_node.store.errors import ReserveError

log = logging.getLogger(__name__)

FREE_SPACE_TTL = 0.1  # s between two statvfs; bytes admitted meanwhile are subtracted


class DiskSpace:
    """Free space under ``root`` against ``reserve_bytes`` (0: no reserve); thread-safe."""

    def __init__(self, root: Path, reserve_bytes: int = 0) -> None:
        self.root = root
        self.reserve_bytes = reserve_bytes
        self._free_checked = -1.0
        self._free = 0
        self._low = False
        self._lock = threading.Lock()  # the free space and when it was measured
        self._low_lock = threading.Lock()  # the condition last logged

    def _refresh_free(self, now: float) -> None:
        self._free = shutil.disk_usage(self.root).free
        self._free_checked = now

    def free_bytes(self) -> int:
        """Free space on the store's filesystem, less what was admitted since it was
        last measured (at most :data:`FREE_SPACE_TTL` ago)."""
        with self._lock:
            now = time.monotonic()
            if now - self._free_checked > FREE_SPACE_TTL:
                self._refresh_free(now)
            return self._free

    def admit(self, nbytes: int) -> None:
        """Account ``nbytes`` about to be written under the store (a received fragment);
        raise :class:`ReserveError` if that would leave less free space than the
        reserve. Free space is measured again before refusing, so space that came back
        is used at once."""
        if not self.reserve_bytes:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._free_checked > FREE_SPACE_TTL:
                self._refresh_free(now)
            if self._free - nbytes < self.reserve_bytes and now != self._free_checked:
                self._refresh_free(now)
            room = self._free - nbytes >= self.reserve_bytes
            if room:
                self._free -= nbytes
        self._note_low(not room)
        if not room:
            raise ReserveError(errno.ENOSPC, "free space below the node's reserve")

    def has_room(self) -> bool:
        """False while free space is below the reserve; logs each change of condition once."""
        try:
            self.admit(0)
        except ReserveError:
            return False
        return True

    def _note_low(self, low: bool) -> None:
        if low != self._low:
            with self._low_lock:
                if low != self._low:
                    self._low = low
                    if low:
                        log.error(
                            "free space %d MB, less what is arriving, below the "
                            "reserve of %d MB: refusing C-STOREs with 0xA700 until "
                            "space is freed",
                            self._free // 2**20,
                            self.reserve_bytes // 2**20,
                        )
                    else:
                        log.warning("free space back above the reserve: accepting C-STOREs")
