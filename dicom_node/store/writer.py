"""Durable file writes for received instances.

A file is written to ``incoming/`` (same filesystem as the store), fsynced, renamed into
``instances/{study}/{series}/{sop}.dcm`` and the target directory is fsynced, so that
once :meth:`InstanceStore.write` returns the file and its name survive a power loss.
Leftovers in ``incoming/`` (a crash mid-write) are removed on start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_SAFE = re.compile(r"^[0-9A-Za-z._-]{1,64}$")


class StoreError(OSError):
    """Writing an instance failed; nothing was left behind."""


def safe_component(uid: str) -> str:
    """A UID usable as a single path component (hashed if it has unusual characters)."""
    uid = uid.strip().rstrip("\x00").strip()
    if _SAFE.match(uid) and uid not in (".", ".."):
        return uid
    return "x" + hashlib.sha1(uid.encode("utf-8", "surrogateescape")).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class InstanceStore:
    """Files of received instances under ``root``; thread-safe."""

    def __init__(self, root: Path, *, reserve_bytes: int = 0, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.instances = self.root / "instances"
        self.incoming = self.root / "incoming"
        self.reserve_bytes = reserve_bytes
        self.fsync = fsync
        self._free_checked = 0.0
        self._free = 0
        self._low = False
        self._lock = threading.Lock()

    def open(self) -> None:
        """Create the directories and remove half-written files left by a crash."""
        self.instances.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)
        stale = list(self.incoming.iterdir())
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            log.warning("removed %d half-written file(s) from %s", len(stale), self.incoming)

    def path_for(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where an instance lives."""
        return (self.instances / safe_component(study_uid) / safe_component(series_uid)
                / f"{safe_component(sop_uid)}.dcm")

    def free_bytes(self) -> int:
        """Free space on the store's filesystem (cached for half a second)."""
        now = time.monotonic()
        if now - self._free_checked > 0.5:
            self._free = shutil.disk_usage(self.root).free
            self._free_checked = now
        return self._free

    def has_room(self) -> bool:
        """False while free space is below the reserve; logs each change of condition once."""
        low = self.free_bytes() < self.reserve_bytes
        if low != self._low:
            with self._lock:
                if low != self._low:
                    self._low = low
                    if low:
                        log.error("free space %d MB below the reserve of %d MB: refusing "
                                  "C-STOREs with 0xA700 until space is freed",
                                  self._free // 2**20, self.reserve_bytes // 2**20)
                    else:
                        log.warning("free space back above the reserve: accepting C-STOREs")
        return not low

    def _ensure_dir(self, directory: Path) -> None:
        if directory.is_dir():
            return
        # Create each missing level and make its name durable in its parent.
        missing = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            if self.fsync:
                _fsync_dir(d.parent)

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
            self._ensure_dir(final.parent)
            os.replace(tmp, final)
            if self.fsync:
                _fsync_dir(final.parent)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            reason = err.strerror or str(err)
            raise StoreError(err.errno, f"cannot store {final.name}: {reason}") from err
        return size

    def commit(self, spooled: Path, final: Path) -> int:
        """Make a file already written under ``incoming/`` durable at ``final`` (fsync,
        rename, fsync the directory); return its size. A file elsewhere (another
        filesystem) is copied durably instead. On failure ``spooled`` is left as it was."""
        spooled = Path(spooled)
        if spooled.parent != self.incoming:
            with open(spooled, "rb") as fh:
                return self.write(final, iter(lambda: fh.read(1 << 20), b""))
        try:
            fd = os.open(spooled, os.O_RDONLY)
            try:
                if self.fsync:
                    os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            self._ensure_dir(final.parent)
            os.replace(spooled, final)
            if self.fsync:
                _fsync_dir(final.parent)
        except OSError as err:
            reason = err.strerror or str(err)
            raise StoreError(err.errno, f"cannot store {final.name}: {reason}") from err
        return size

    def remove(self, path: Path) -> None:
        """Remove a stored file (used to undo a write whose indexing failed)."""
        Path(path).unlink(missing_ok=True)
