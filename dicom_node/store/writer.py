"""Durable file writes for received instances.

A file is written to ``incoming/`` (same filesystem as the store), fsynced, renamed into
``instances/{study}/{series}/{sop}.dcm`` and the target directory is fsynced, so that
once :meth:`InstanceStore.write` returns the file and its name survive a power loss.
Leftovers in ``incoming/`` (a crash mid-write) are removed on start.

The receive path splits that into steps so that the disk works while the CPU does:
:meth:`InstanceStore.place` links a spooled file under its final name and starts the
fsync of its directory on a background thread; :meth:`Placed.wait_durable` fsyncs the
file on the caller's thread (unless an fsync of it was started earlier, as STOW-RS does)
and waits for the directory's, just before the caller commits the index row. A crash before
then can leave an unindexed file at a final path, which the next copy of that instance
replaces.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import resource
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dicom_node import metrics
from dicom_node.store.ready_files import ReadyFiles

log = logging.getLogger(__name__)

_UID_CHARS = re.compile(r"^[0-9.]{1,64}$")  # what a valid UID is made of


class StoreError(OSError):
    """Writing an instance failed; nothing was left behind."""


class ReserveError(StoreError):
    """Writing would take free space below the node's reserve."""


_MKDIR_TRIES = 100  # a parent removed under ensure_dir this often in a row: give up
FREE_SPACE_TTL = 0.1  # s between two statvfs; bytes admitted meanwhile are subtracted


def safe_component(uid: str) -> str:
    """A UID as a single path component, different for every different ``uid``.

    A UID of digits and dots (every valid one) is its own name; anything else is named
    ``x`` + its SHA-256: a name with a letter, which no name of the first kind can
    equal, so an instance can never be given another instance's file."""
    if _UID_CHARS.match(uid) and uid not in (".", ".."):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()


def queued_fsync_limit() -> int:
    """Fsyncs that may wait for a thread holding their file open: ``ulimit -n`` / 16 (64
    of 1024), 4 to 1024 (within the descriptor per connection HTTP allows for them)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1024 if soft == resource.RLIM_INFINITY else min(1024, max(4, soft // 16))


def _fsync_path(path: Path) -> None:
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


@dataclass(frozen=True)
class Placed:
    """A file linked into place whose data and directory entry may still be reaching the
    disk."""

    path: Path
    size: int
    syncs: tuple[Future[None], ...]  # fsyncs under way: the file's (if started), its directory's
    # fsyncs the file itself on the thread that waits (when no fsync of it was started)
    fsync_here: Callable[[Path], None] | None = None

    def wait_durable(self) -> None:
        """Block until the file and its name are on disk; raise StoreError if that
        failed."""
        try:
            if self.fsync_here is not None:
                self.fsync_here(self.path)
            for sync in self.syncs:
                sync.result()
        except OSError as err:
            raise StoreError(
                err.errno, f"cannot store {self.path.name}: {err.strerror or err}"
            ) from err


class InstanceStore:
    """Files of received instances under ``root``; thread-safe."""

    def __init__(
        self,
        root: Path,
        *,
        reserve_bytes: int = 0,
        fsync: bool = True,
        max_queued_fsyncs: int | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.instances = self.root / "instances"
        self.incoming = self.root / "incoming"
        self.reserve_bytes = reserve_bytes
        self.fsync = fsync
        self._free_checked = -1.0
        self._free = 0
        self._low = False
        self._lock = threading.Lock()
        self._space_lock = threading.Lock()
        self._syncer: ThreadPoolExecutor | None = None
        # fsyncs queued and not yet started, by (device, inode): a later request for the
        # same file or directory joins one, since it will see every change made so far.
        # A queued fsync holds its file open, so its inode number cannot be reused by
        # another file meanwhile.
        self._queued: dict[tuple[int, int], Future[None]] = {}
        # :meth:`sync_ahead` starts none beyond this many queued (default from ulimit -n).
        self.max_queued_fsyncs = max_queued_fsyncs or queued_fsync_limit()
        self._ready = ReadyFiles(self.incoming, ".stow")  # STOW-RS parts' spool files

    def _sync_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._syncer is None:
                self._syncer = ThreadPoolExecutor(4, thread_name_prefix="store-fsync")
            return self._syncer

    def close(self) -> None:
        """Stop the background fsync threads (after the fsyncs they were given) and remove
        the spool files prepared ahead."""
        self._ready.close()
        with self._lock:
            syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.shutdown(wait=True)

    def open(self, *, owner: bool = True) -> None:
        """Create the directories; as the ``owner`` of the store (the node), also remove
        the half-written files a crash left in ``incoming/``. Another process writing to
        the same store (a job worker) must not: those would be the node's files being
        received and the ones it keeps ready."""
        self.instances.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)
        if owner:
            stale = 0
            for p in self.incoming.iterdir():
                stale += p.stat().st_size > 0  # empty ones were only kept ready
                p.unlink(missing_ok=True)
            if stale:
                log.warning("removed %d half-written file(s) from %s", stale, self.incoming)
        self._ready.close()  # any made before: their names may have just been removed
        self._ready = ReadyFiles(self.incoming, ".stow")

    def spool_file(self) -> tuple[Path, int]:
        """A new empty file in ``incoming/`` and a descriptor open for writing it (the
        caller closes it), prepared ahead on a background thread once the store is open."""
        return self._ready.take()

    def path_for(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where an instance lives."""
        return (
            self.instances
            / safe_component(study_uid)
            / safe_component(series_uid)
            / f"{safe_component(sop_uid)}.dcm"
        )

    def _refresh_free(self, now: float) -> None:
        self._free = shutil.disk_usage(self.root).free
        self._free_checked = now

    def free_bytes(self) -> int:
        """Free space on the store's filesystem, less what was admitted since it was
        last measured (at most :data:`FREE_SPACE_TTL` ago)."""
        with self._space_lock:
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
        with self._space_lock:
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
            with self._lock:
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

    def ensure_dir(self, directory: Path) -> None:
        """Create ``directory`` under the store and any missing parent, each new level's
        name durable in its parent (when the store fsyncs). A level removed meanwhile
        (retention removing an emptied study directory) is created again."""
        for attempt in range(_MKDIR_TRIES):
            if directory.is_dir():
                return
            missing = []
            d = directory
            while not d.is_dir():
                missing.append(d)
                d = d.parent
            try:
                for d in reversed(missing):
                    # Created by another receiver meanwhile: its fsync of the parent may
                    # not have completed, and this one's instance must not wait for it.
                    with contextlib.suppress(FileExistsError):
                        d.mkdir()
                    if self.fsync:
                        _fsync_path(d.parent)
            except FileNotFoundError:
                if attempt == _MKDIR_TRIES - 1:
                    raise

    def write(self, final: Path, parts: Iterable[bytes | memoryview]) -> int:
        """Write ``parts`` durably to ``final`` (atomically replacing it); return the size."""
        tmp = self.incoming / f"{uuid.uuid4().hex}.part"
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                for part in parts:
                    view = memoryview(part)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                        size += n
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self.ensure_dir(final.parent)
            os.replace(tmp, final)
            if self.fsync:
                _fsync_path(final.parent)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            reason = err.strerror or str(err)
            raise StoreError(err.errno, f"cannot store {final.name}: {reason}") from err
        return size

    def sync_now(self, path: Path | str) -> None:
        """fsync a file or a directory on this thread."""
        _fsync_path(Path(path))

    def sync_later(self, path: Path | str, *, wait_start: float | None = None) -> Future[None]:
        """Start fsyncing ``path`` on a background thread and return once the fsync is
        under way, or after ``wait_start`` seconds if every fsync thread is busy (the
        event loop must not wait for them); the future fails with the OSError if it
        does. A request for a file or directory whose fsync is queued and not yet
        started joins it (e.g. the directory of a series whose instances arrive at once:
        one fsync for all). A no-op when the store does not fsync."""
        if not self.fsync:
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
        """:meth:`sync_later` for a file that :meth:`place` will fsync anyway if not given
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

    def place(self, spooled: Path, final: Path, synced: Future[None] | None = None) -> Placed:
        """Move a file written under ``incoming/`` to ``final`` and start the fsyncs that
        make it durable; :meth:`Placed.wait_durable` waits for them.

        A new name is linked at once and then the file and its directory are fsynced
        together (on a journaling filesystem such as ext4 both usually land in one journal
        commit). Until they complete nothing refers to the file: the caller indexes it
        only after :meth:`Placed.wait_durable`. A file already at ``final`` (an instance
        being replaced) is only replaced once the new one is on disk. A file elsewhere
        (another filesystem) is copied durably instead. On failure ``spooled`` is left as
        it was. ``synced``: an fsync of ``spooled`` requested after its last write (STOW-RS
        starts one as each part ends), which then stands for the file's own."""
        spooled = Path(spooled)
        if spooled.parent != self.incoming:
            self.admit(os.stat(spooled).st_size)
            with open(spooled, "rb") as fh:
                size = self.write(final, iter(lambda: fh.read(1 << 20), b""))
            return Placed(final, size, ())
        try:
            size = os.stat(spooled).st_size
            self.ensure_dir(final.parent)
            try:
                os.link(spooled, final)  # never over an existing file
            except OSError:  # one is there (or no hard links here): the strict order
                (synced or self.sync_later(spooled)).result()
                os.replace(spooled, final)
                return Placed(final, size, (self.sync_later(final.parent),))
            with contextlib.suppress(OSError):  # a leftover is removed on next start
                os.unlink(spooled)
        except OSError as err:
            reason = err.strerror or str(err)
            raise StoreError(err.errno, f"cannot store {final.name}: {reason}") from err
        # The directory's fsync starts on a background thread; the file's runs on the
        # caller's thread when it waits (no hand-over to another thread for it), unless
        # one is already under way.
        directory = self.sync_later(final.parent, wait_start=0)
        if synced is not None:
            return Placed(final, size, (synced, directory))
        return Placed(final, size, (directory,), self.sync_now if self.fsync else None)

    def remove(self, path: Path) -> None:
        """Remove a stored file (used to undo a write whose indexing failed)."""
        Path(path).unlink(missing_ok=True)
