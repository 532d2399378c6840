"""Write each C-STORE dataset to disk while it is being received.

pynetdicom can hand a C-STORE to its handler as a file instead of in memory
(``_config.STORE_RECV_CHUNKED_DATASET``): as soon as the command set has arrived it opens
a ``NamedTemporaryFile``, writes the preamble and File Meta Information, then appends each
P-DATA fragment of the dataset as it is decoded. :func:`install` turns that on and makes
pynetdicom create the file as a :class:`SpoolFile` in the store's ``incoming/`` directory
(same filesystem, so the handler can fsync and rename it into place) for the AEs
registered with :func:`register`.

The node never holds a dataset in memory and never copies it again after receiving it.
Creating a file costs a journal transaction (0.1-1 ms on the disks we measured), so a
few empty spool files are kept ready in each directory
(:class:`~dicom_node.store.ready_files.ReadyFiles`); pynetdicom takes one as each C-STORE
begins.


pynetdicom opens a dataset's file as soon as its command has arrived, but hands it to the
handler only if the request is valid, of a Storage SOP class and served before the
association ends; otherwise it forgets the file (open, on disk). So every file is
recorded against its association until the handler :func:`claim` s it, and whatever is
still unclaimed when the association ends is removed (:func:`end_of_association`, from
the release/abort/close events, and from a sweep for associations whose threads ended
without any of them). This is done with the spool tweak off too, for pynetdicom's own
temporary files. An association that holds more than :data:`MAX_UNSERVED` such files (a
peer sending requests pynetdicom drops, on one long association) is aborted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dicom_node import metrics
from dicom_node.index.header import dataset_offset as dataset_offset  # re-exported
from dicom_node.network import guard
from dicom_node.store.ready_files import ReadyFiles

log = logging.getLogger(__name__)

_installed = False
_into_store = True  # spool into the registered directory (else pynetdicom's temp files)
READY_FILES = 4
SWEEP_SECONDS = 0.5  # how often associations that ended without an event are looked for
# Received datasets an association may hold that no handler took yet: the node negotiates
# one outstanding operation, so a conforming peer holds one (the dataset arriving).
MAX_UNSERVED = 8
Admit = Callable[[int], None]  # raises OSError to refuse writing that many bytes


class SpoolFile:
    """The part of ``NamedTemporaryFile``'s interface pynetdicom uses, unbuffered.

    A failed write (disk full, I/O error) is remembered, the file removed and the rest of
    the dataset discarded, so that the C-STORE still completes and its handler can answer
    0xA700 (:func:`write_error`) instead of pynetdicom aborting the association.
    """

    def __init__(self, made: tuple[Path, int], admit: Admit | None = None) -> None:
        path, self._fd = made  # an empty file in the spool directory, open for writing
        self.name = str(path)
        self.file = self  # pynetdicom calls ``.file.flush()``
        self.error: OSError | None = None
        self._admit = admit  # the store's disk reserve, asked before each write
        self._lock = threading.Lock()  # a discard at association end vs the DUL's writes

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        total = len(view)
        with self._lock:
            failed = None
            if self.error is None and self._fd >= 0:
                try:
                    if self._admit is not None:
                        self._admit(total)
                    while view:
                        view = view[os.write(self._fd, view) :]
                except OSError as err:
                    failed = err
        if failed is not None:
            self._fail(failed)
        return total

    def _fail(self, err: OSError) -> None:
        self.error = err
        if len(_write_errors) > 1000:  # only C-STOREs that never reached a handler
            _write_errors.clear()
        _write_errors[self.name] = err
        self.discard()

    def discard(self) -> None:
        """Close and remove the file (its C-STORE will not be stored)."""
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.name)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


_write_errors: dict[str, OSError] = {}


def write_error(path: Path | str) -> OSError | None:
    """The error that stopped the spooling of ``path``, if one did (asked once)."""
    return _write_errors.pop(str(path), None)


def _discard(received: Any) -> None:
    """Close and remove a received dataset's file (a SpoolFile or pynetdicom's own)."""
    if isinstance(received, SpoolFile):
        received.discard()
        return
    with contextlib.suppress(OSError, ValueError):
        received.close()
    with contextlib.suppress(OSError):
        os.unlink(received.name)


def _ended(assoc: Any) -> bool:
    """Whether both threads of ``assoc`` (association and DUL) have finished."""
    dul = getattr(assoc, "dul", None)
    return not assoc.is_alive() and not (dul is not None and dul.is_alive())


class _Spool:
    """The spool of one directory: empty files created ahead of need
    (:class:`~dicom_node.store.ready_files.ReadyFiles`, from the first use on, after the
    store has cleaned the directory), and the received datasets each association holds,
    swept by a daemon thread."""

    def __init__(
        self,
        directory: Path,
        size: int = READY_FILES,
        admit: Admit | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.admit = admit
        self._files = ReadyFiles(self.directory, ".dcm", size)
        self._want = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Received datasets not yet claimed by the handler: association -> {path: file}
        self._owned: dict[Any, dict[str, Any]] = {}
        self._owner_of: dict[str, Any] = {}

    def take(self, owner: Any) -> SpoolFile:
        """A new empty spool file for ``owner``'s next dataset (created now if none is
        ready). If none can be created (no inode or fd left), one that discards what is
        written to it, so that the C-STORE is answered 0xA700 as for a failed write
        instead of pynetdicom aborting the association."""
        try:
            made = self._files.take()
        except OSError as err:
            log.error("cannot create a spool file in %s: %s", self.directory, err)
            # A name no file has (never created): discarding it removes nothing.
            unmade = self.directory / f"unmade-{uuid.uuid4().hex}.dcm"
            spool = SpoolFile((unmade, -1), admit=self.admit)
            spool._fail(err)
        else:
            spool = SpoolFile(made, admit=self.admit)
        self._own(owner, spool)
        return spool

    def temporary(self, owner: Any, *args: Any, **kwargs: Any) -> Any:
        """pynetdicom's own temporary file for ``owner``'s next dataset (tweak off)."""
        received = tempfile.NamedTemporaryFile(*args, **kwargs)  # noqa: SIM115 - closed by pynetdicom
        self._own(owner, received)
        return received

    def _own(self, owner: Any, received: Any) -> None:
        with self._lock:
            self._owned.setdefault(owner, {})[received.name] = received
            self._owner_of[received.name] = owner
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._sweeps, daemon=True, name="spool-sweep"
                )
                self._thread.start()
        self._want.set()  # the sweep runs while any association holds files

    def held(self, owner: Any) -> int:
        """How many received datasets ``owner`` holds that no handler claimed."""
        return len(self._owned.get(owner, ()))

    def claim(self, path: str) -> bool:
        """The handler takes ``path`` over (it places or removes it from now on); False if
        it was discarded already because its association ended."""
        with self._lock:
            owner = self._owner_of.pop(path, None)
            if owner is not None:
                self._owned.get(owner, {}).pop(path, None)
            return owner is not None or os.path.exists(path)

    def end(self, owner: Any) -> list[str]:
        """Discard ``owner``'s received datasets that no handler claimed; return their
        paths."""
        with self._lock:  # held while removing: a claim sees the file whole, or gone
            files = self._owned.pop(owner, {})
            for path, received in files.items():
                self._owner_of.pop(path, None)
                _discard(received)
        return list(files)

    def _sweep(self) -> None:
        """End the associations whose threads finished without a release, abort or close
        event (a DUL thread that died, for one)."""
        with self._lock:
            ended = [owner for owner in self._owned if _ended(owner)]
        for owner in ended:
            if discarded := self.end(owner):
                metrics.SPOOL_FILES_DISCARDED.inc(len(discarded))
                log.warning(
                    "an association ended without closing: %d received dataset(s) discarded",
                    len(discarded),
                )

    def _sweeps(self) -> None:
        while not self._closed:
            self._want.wait(SWEEP_SECONDS if self._owned else None)
            self._want.clear()
            self._sweep()
        self._discard()

    def close(self) -> None:
        """Stop preparing files and remove the ready ones and the unclaimed datasets."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._want.set()
        if thread is not None:
            thread.join(5)
        self._files.close()
        self._discard()

    def _discard(self) -> None:
        with self._lock:
            owners = list(self._owned)
        for owner in owners:
            self.end(owner)


_spools: weakref.WeakKeyDictionary[Any, _Spool] = weakref.WeakKeyDictionary()


def register(ae: Any, directory: Path, admit: Admit | None = None) -> None:
    """Spool the C-STORE datasets received by the pynetdicom ``ae`` into ``directory``;
    ``admit(n)`` runs before each write of ``n`` bytes and may refuse it by raising
    OSError (the rest of that dataset is then discarded, as after a failed write)."""
    unregister(ae)
    _spools[ae] = _Spool(directory, admit=admit)


def unregister(ae: Any) -> None:
    """Stop spooling for ``ae`` and remove its prepared files."""
    ready = _spools.pop(ae, None)
    if ready is not None:
        ready.close()


def _spool_for(assoc: Any) -> _Spool | None:
    """The spool of the AE of ``assoc``, if it is registered."""
    ae = getattr(assoc, "ae", None)
    try:
        return _spools.get(ae) if ae is not None else None
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def _named_temporary_file(*args: Any, **kwargs: Any) -> Any:
    # Called on the DUL thread of the association whose C-STORE command just arrived.
    assoc = getattr(threading.current_thread(), "assoc", None)
    ready = _spool_for(assoc)
    if ready is None:  # another AE in this process: pynetdicom's own behaviour
        return tempfile.NamedTemporaryFile(*args, **kwargs)
    received = ready.take(assoc) if _into_store else ready.temporary(assoc, *args, **kwargs)
    held = ready.held(assoc)
    if held > MAX_UNSERVED:
        # Requests pynetdicom dropped unanswered (or pipelined past the negotiated one
        # outstanding operation): their files would pile up until the association ends.
        # This one is written, never served, and removed with the others at the abort.
        guard.abort_association(
            assoc, f"{held - 1} received datasets not served (at most {MAX_UNSERVED})"
        )
    return received


def claim(assoc: Any, path: Path | str) -> bool:
    """The C-STORE handler of ``assoc`` takes the received dataset at ``path`` over (it
    places or removes it from now on); False if the file was discarded already because
    the association ended (the C-STORE then fails; its response cannot be sent)."""
    ready = _spool_for(assoc)
    return True if ready is None else ready.claim(str(path))


def end_of_association(assoc: Any) -> list[str]:
    """Discard the received datasets of ``assoc`` that no handler claimed (pynetdicom
    dropped the request, or the association ended before serving it, or in the middle of
    a dataset); return their paths. Call it whenever the association ends (release, abort,
    connection closed); more than once is harmless."""
    ready = _spool_for(assoc)
    return [] if ready is None else ready.end(assoc)


def install(into_store: bool = True) -> bool:
    """Make pynetdicom receive C-STORE datasets into files recorded against their
    association (see the module's docstring): spooled into the registered directories
    with ``into_store`` (the spool tweak), else in pynetdicom's own temporary files.
    Return whether the hook is in place (if pynetdicom differs, its own temp files are
    used, unrecorded, and the handler copies them)."""
    global _installed, _into_store
    from pynetdicom import dimse_messages

    chunked_datasets()
    _into_store = into_store
    if _installed:
        return True
    if getattr(dimse_messages, "NamedTemporaryFile", None) is not tempfile.NamedTemporaryFile:
        log.info("spooling into the store not applied: pynetdicom differs from 3.0.x")
        return False
    dimse_messages.NamedTemporaryFile = _named_temporary_file  # type: ignore[attr-defined]
    _installed = True
    return True


def chunked_datasets() -> None:
    """pynetdicom's public switch: C-STORE datasets arrive in a file, not in memory."""
    from pynetdicom import _config

    _config.STORE_RECV_CHUNKED_DATASET = True
