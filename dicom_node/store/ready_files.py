"""Empty files created ahead of need, so that a request does not wait for a create.

Creating a file costs a journal handle and an inode search (0.1-1 ms on the disks we
measured, more while fsyncs are under way), and STOW-RS creates one per part on the
event loop, where every other request waits for it. :class:`ReadyFiles` keeps a few
empty files open in one directory, made by a daemon thread that refills the pool as they
are taken. Each name is unique to the process (a random prefix and a counter); whatever
is left when the process dies is removed with the rest of ``incoming/`` at the next start.

When files cannot be created (disk or inodes exhausted), each part creates its own (and
fails as the store does); the thread tries again as each part is taken, so a long
episode is one WARNING line when it starts, DEBUG lines while it lasts, an INFO line
when files are prepared again, and every failure counted
(``dicom_node_ready_files_failures_total``).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import uuid
from pathlib import Path

from dicom_node import metrics

log = logging.getLogger(__name__)

READY = 8  # empty files kept open: a few requests' next parts


class ReadyFiles:
    """Empty files in ``directory``, named ``{prefix}-{n}{suffix}``, open for writing."""

    def __init__(self, directory: Path, suffix: str, size: int = READY) -> None:
        self.directory = Path(directory)
        self.suffix = suffix
        self.size = size
        self._prefix = uuid.uuid4().hex[:16]
        self._numbers = itertools.count()
        self._files: collections.deque[tuple[Path, int]] = collections.deque()
        self._want = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failures = 0  # the fill thread's failures in a row (its own: no lock)

    def _create(self) -> tuple[Path, int]:
        path = self.directory / f"{self._prefix}-{next(self._numbers)}{self.suffix}"
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def take(self) -> tuple[Path, int]:
        """An empty file's path and a descriptor open for writing (the caller closes it);
        created now if none is ready. OSError if it cannot be created. A ready file whose
        name was removed meanwhile (``incoming/`` cleaned by another process) is dropped:
        what was written to it could not be linked into place."""
        while True:
            with self._lock:
                ready = self._files.popleft() if self._files else None
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(
                        target=self._fill, daemon=True, name="ready-files"
                    )
                    self._thread.start()
                # under the lock: a look at the pool after this set sees this take
                self._want.set()
            if ready is None:
                return self._create()
            if os.fstat(ready[1]).st_nlink:
                return ready
            os.close(ready[1])

    def _fill(self) -> None:
        while True:
            self._want.wait()
            try:
                while True:
                    with self._lock:
                        # this look sees every take so far: a take during a refill that
                        # the refill saw is not one more try (one more failure counted)
                        self._want.clear()
                        if self._closed or len(self._files) >= self.size:
                            break
                    made = self._create()
                    self._recovered()
                    with self._lock:
                        if self._closed:
                            _remove(made)
                            return
                        self._files.append(made)
            except OSError as err:  # disk full, directory gone: take() creates its own
                self._failed(err)
            with self._lock:
                if self._closed:
                    return

    def _failed(self, err: OSError) -> None:
        """Count a failure to prepare a file; a WARNING for the first in a row only."""
        metrics.READY_FILES_FAILED.labels(self.suffix.lstrip(".")).inc()
        self._failures += 1
        if self._failures == 1:
            log.warning(
                "cannot prepare files in %s: %s (each part creates its own meanwhile; "
                "repeats logged at DEBUG until files are prepared again)",
                self.directory,
                err,
            )
        else:
            log.debug(
                "cannot prepare files in %s: %s (%d failures in a row)",
                self.directory,
                err,
                self._failures,
            )

    def _recovered(self) -> None:
        """A file was prepared: say so if the ones before it failed."""
        if self._failures:
            log.info(
                "files in %s are prepared again, after %d failure(s) in a row",
                self.directory,
                self._failures,
            )
            self._failures = 0

    def close(self) -> None:
        """Stop preparing files and remove the ready ones."""
        with self._lock:
            self._closed = True
            thread = self._thread
            files, self._files = list(self._files), collections.deque()
        self._want.set()
        if thread is not None:
            thread.join(5)
        for made in files:
            _remove(made)


def _remove(made: tuple[Path, int]) -> None:
    path, fd = made
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(path)
