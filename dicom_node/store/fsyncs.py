"""Background fsyncs of the store's files and directories.

An fsync is started on one of a few threads so that the disk works while the caller goes
on; a request for a file or directory whose fsync is queued and not yet started joins it
(it will see every change made so far). A queued fsync holds its file open, so at most
``max_queued_fsyncs`` are started ahead (:meth:`Fsyncs.sync_ahead`).
"""

from __future__ import annotations

import os
import resource
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from dicom_node import metrics


def queued_fsync_limit() -> int:
    """Fsyncs that may wait for a thread holding their file open: ``ulimit -n`` / 16 (64
    of 1024), 4 to 1024 (within the descriptor per connection HTTP allows for them)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1024 if soft == resource.RLIM_INFINITY else min(1024, max(4, soft // 16))


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


class Fsyncs:
    """The store's fsyncs, none at all unless ``enabled``; thread-safe."""

    def __init__(self, *, enabled: bool = True, max_queued_fsyncs: int | None = None) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._syncer: ThreadPoolExecutor | None = None
        # fsyncs queued and not yet started, by (device, inode): a later request for the
        # same file or directory joins one, since it will see every change made so far.
        # A queued fsync holds its file open, so its inode number cannot be reused by
        # another file meanwhile.
        self._queued: dict[tuple[int, int], Future[None]] = {}
        # :meth:`sync_ahead` starts none beyond this many queued (default from ulimit -n).
        self.max_queued_fsyncs = max_queued_fsyncs or queued_fsync_limit()

    def _sync_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._syncer is None:
                self._syncer = ThreadPoolExecutor(4, thread_name_prefix="store-fsync")
            return self._syncer

    def close(self) -> None:
        """Stop the background fsync threads (after the fsyncs they were given)."""
        with self._lock:
            syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.shutdown(wait=True)

    def sync_now(self, path: Path | str) -> None:
        """fsync a file or a directory on this thread."""
        fsync_path(Path(path))

    def sync_later(self, path: Path | str, *, wait_start: float | None = None) -> Future[None]:
        """Start fsyncing ``path`` on a background thread and return once the fsync is
        under way, or after ``wait_start`` seconds if every fsync thread is busy (the
        event loop must not wait for them); the future fails with the OSError if it
        does. A request for a file or directory whose fsync is queued and not yet
        started joins it (e.g. the directory of a series whose instances arrive at once:
        one fsync for all). A no-op when the store does not fsync."""
        if not self.enabled:
            return _done()
        try:
            fd = os.open(path, os.O_RDONLY)  # a file or a directory
        except OSError as err:
            failed: Future[None] = Future()
            failed.set_exception(err)
            return failed
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            queued = self._queued.get(key)
            if queued is None:
                future: Future[None] = Future()
                self._queued[key] = future
        if queued is not None:
            os.close(fd)
            return queued
        started = threading.Event()
        self._sync_pool().submit(self._fsync, key, fd, future, started)
        # The worker needs the GIL to reach fsync; waiting here hands it over, so the disk
        # works while this thread goes on (otherwise it may not start for ms).
        started.wait(wait_start)
        return future

    def sync_ahead(
        self, path: Path | str, *, wait_start: float | None = None
    ) -> Future[None] | None:
        """:meth:`sync_later` for a file that
        :meth:`~dicom_node.store.writer.InstanceStore.place` will fsync anyway if not given
        a started fsync: None, and nothing started, while ``max_queued_fsyncs`` fsyncs
        already wait for a thread. Each waiting one holds its file open: a burst of tiny
        STOW-RS parts (8 requests of 250 under ``ulimit -n 64``) took every descriptor,
        and parts failed with EMFILE."""
        with self._lock:
            if len(self._queued) >= self.max_queued_fsyncs:
                metrics.FSYNCS_DEFERRED.inc()
                return None
        return self.sync_later(path, wait_start=wait_start)

    def _fsync(
        self, key: tuple[int, int], fd: int, future: Future[None], started: threading.Event
    ) -> None:
        with self._lock:  # from now on a new request needs a new fsync
            if self._queued.get(key) is future:
                del self._queued[key]
        started.set()
        try:
            os.fsync(fd)
        except OSError as err:
            future.set_exception(err)
        else:
            future.set_result(None)
        finally:
            os.close(fd)
