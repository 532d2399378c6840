"""Durable file writes for received instances.

A file is written to ``incoming/`` (same filesystem as the store), fsynced, renamed into
``instances/{study}/{series}/{sop}.dcm`` and the target directory is fsynced, so that
once :meth:`InstanceStore.write` returns the file and its name survive a power loss.
Leftovers in ``incoming/`` (a crash mid-write) are removed on start.

The receive path splits that into steps so that the disk works while the CPU does:
:meth:`InstanceStore.place` links a spooled file under its final name and starts the
fsync of its directory on a background thread (:mod:`dicom_node.store.fsyncs`);
:meth:`Placed.wait_durable` fsyncs the file on the caller's thread (unless an fsync of it
was started earlier, as STOW-RS does) and waits for the directory's, just before the
caller commits the index row. A crash before then can leave an unindexed file at a final
path, which the next copy of that instance replaces. The free space left above the node's
reserve is accounted by :attr:`InstanceStore.space` (:mod:`dicom_node.store.disk_space`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from dicom_node.store.disk_space import DiskSpace
from dicom_node.store.errors import StoreError
from dicom_node.store.fsyncs import Fsyncs, fsync_path
from dicom_node.store.ready_files import ReadyFiles

log = logging.getLogger(__name__)

_UID_CHARS = re.compile(r"^[0-9.]{1,64}$")  # what a valid UID is made of


_MKDIR_TRIES = 100  # a parent removed under ensure_dir this often in a row: give up


def safe_component(uid: str) -> str:
    """A UID as a single path component, different for every different ``uid``.

    A UID of digits and dots (every valid one) is its own name; anything else is named
    ``x`` + its SHA-256: a name with a letter, which no name of the first kind can
    equal, so an instance can never be given another instance's file."""
    if _UID_CHARS.match(uid) and uid not in (".", ".."):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()


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
        self.space = DiskSpace(self.root, reserve_bytes)  # free space against the reserve
        # the background fsyncs (none at all without ``fsync``)
        self.fsyncs = Fsyncs(enabled=fsync, max_queued_fsyncs=max_queued_fsyncs)
        self._ready = ReadyFiles(self.incoming, ".stow")  # STOW-RS parts' spool files

    def close(self) -> None:
        """Stop the background fsync threads (after the fsyncs they were given) and remove
        the spool files prepared ahead."""
        self._ready.close()
        self.fsyncs.close()

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
                    if self.fsyncs.enabled:
                        fsync_path(d.parent)
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
                if self.fsyncs.enabled:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self.ensure_dir(final.parent)
            os.replace(tmp, final)
            if self.fsyncs.enabled:
                fsync_path(final.parent)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            reason = err.strerror or str(err)
            raise StoreError(err.errno, f"cannot store {final.name}: {reason}") from err
        return size

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
            self.space.admit(os.stat(spooled).st_size)
            with open(spooled, "rb") as fh:
                size = self.write(final, iter(lambda: fh.read(1 << 20), b""))
            return Placed(final, size, ())
        try:
            size = os.stat(spooled).st_size
            self.ensure_dir(final.parent)
            try:
                os.link(spooled, final)  # never over an existing file
            except OSError:  # one is there (or no hard links here): the strict order
                (synced or self.fsyncs.sync_later(spooled)).result()
                os.replace(spooled, final)
                return Placed(final, size, (self.fsyncs.sync_later(final.parent),))
            with contextlib.suppress(OSError):  # a leftover is removed on next start
                os.unlink(spooled)
        except OSError as err:
            reason = err.strerror or str(err)
            raise StoreError(err.errno, f"cannot store {final.name}: {reason}") from err
        # The directory's fsync starts on a background thread; the file's runs on the
        # caller's thread when it waits (no hand-over to another thread for it), unless
        # one is already under way.
        directory = self.fsyncs.sync_later(final.parent, wait_start=0)
        if synced is not None:
            return Placed(final, size, (synced, directory))
        fsync_here = self.fsyncs.sync_now if self.fsyncs.enabled else None
        return Placed(final, size, (directory,), fsync_here)

    def remove(self, path: Path) -> None:
        """Remove a stored file (used to undo a write whose indexing failed)."""
        Path(path).unlink(missing_ok=True)
