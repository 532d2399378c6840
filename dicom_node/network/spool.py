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
background thread keeps a few empty spool files ready in each directory
(:class:`_Ready`); pynetdicom takes one as each C-STORE begins.

The File Meta pynetdicom writes first is encoded through :mod:`.file_meta`.
"""

from __future__ import annotations

import collections
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

from dicom_node.network import file_meta

log = logging.getLogger(__name__)

_installed = False
READY_FILES = 4
HeadHook = Callable[["SpoolFile", bytes], None]  # empty spool files kept ready per directory
Admit = Callable[[int], None]  # raises OSError to refuse writing that many bytes


class SpoolFile:
    """The part of ``NamedTemporaryFile``'s interface pynetdicom uses, unbuffered.

    A failed write (disk full, I/O error) is remembered, the file removed and the rest of
    the dataset discarded, so that the C-STORE still completes and its handler can answer
    0xA700 (:func:`write_error`) instead of pynetdicom aborting the association.
    """

    def __init__(
        self,
        directory: Path,
        suffix: str = ".dcm",
        on_head: HeadHook | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.name = str(directory / f"{uuid.uuid4().hex}{suffix}")
        self._fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.file = self  # pynetdicom calls ``.file.flush()``
        self.error: OSError | None = None
        self.transfer_syntax: str | None = None  # known once the File Meta is written
        self._on_head = on_head
        self._admit = admit  # the store's disk reserve, asked before each write

    def meta_written(self, transfer_syntax: str) -> None:
        """The File Meta is written: the next write starts the dataset."""
        self.transfer_syntax = transfer_syntax

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        total = len(view)
        if self.error is None:
            try:
                if self._admit is not None:
                    self._admit(total)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as err:
                self._fail(err)
        if self.transfer_syntax is not None and self._on_head is not None:
            on_head, self._on_head = self._on_head, None
            try:
                on_head(self, data)
            except Exception:  # a look-ahead only: never let it break the C-STORE
                log.exception("reading the head of %s failed", self.name)
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
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_write_errors: dict[str, OSError] = {}


def write_error(path: Path | str) -> OSError | None:
    """The error that stopped the spooling of ``path``, if one did (asked once)."""
    return _write_errors.pop(str(path), None)


def discard_partial(assoc: Any) -> bool:
    """Remove the spool file of a C-STORE the association ended in the middle of;
    return whether there was one."""
    message = getattr(getattr(assoc, "dimse", None), "message", None)
    spooled = getattr(message, "_data_set_file", None)
    if isinstance(spooled, SpoolFile):
        spooled.discard()
        return True
    return False


class _Ready:
    """Empty spool files in one directory, created ahead of need by a daemon thread that
    starts on first use (after the store has cleaned the directory)."""

    def __init__(
        self,
        directory: Path,
        size: int = READY_FILES,
        on_head: HeadHook | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.size = size
        self.on_head = on_head
        self.admit = admit
        self._files: collections.deque[SpoolFile] = collections.deque()
        self._want = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def take(self) -> SpoolFile:
        """A new empty spool file (created now if none is ready)."""
        try:
            spool = self._files.popleft()
        except IndexError:
            spool = SpoolFile(self.directory, on_head=self.on_head, admit=self.admit)
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._fill, daemon=True, name="spool-files")
                self._thread.start()
        self._want.set()
        return spool

    def _fill(self) -> None:
        while not self._closed:
            self._want.wait()
            self._want.clear()
            try:
                while not self._closed and len(self._files) < self.size:
                    self._files.append(
                        SpoolFile(self.directory, on_head=self.on_head, admit=self.admit)
                    )
            except OSError as err:  # disk full, directory gone: take() creates its own
                log.warning("cannot prepare spool files in %s: %s", self.directory, err)
        self._discard()

    def close(self) -> None:
        """Stop preparing files and remove the ready ones."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._want.set()
        if thread is not None:
            thread.join(5)
        self._discard()

    def _discard(self) -> None:
        while self._files:
            self._files.popleft().discard()


_ready: weakref.WeakKeyDictionary[Any, _Ready] = weakref.WeakKeyDictionary()


def register(
    ae: Any, directory: Path, on_head: HeadHook | None = None, admit: Admit | None = None
) -> None:
    """Spool the C-STORE datasets received by the pynetdicom ``ae`` into ``directory``;
    ``on_head(spool_file, first_fragment)`` runs (on the DUL thread) as the first
    fragment of each dataset is written, while the rest is still arriving; ``admit(n)``
    runs before each write of ``n`` bytes and may refuse it by raising OSError (the
    rest of that dataset is then discarded, as after a failed write)."""
    unregister(ae)
    _ready[ae] = _Ready(directory, on_head=on_head, admit=admit)


def unregister(ae: Any) -> None:
    """Stop spooling for ``ae`` and remove its prepared files."""
    ready = _ready.pop(ae, None)
    if ready is not None:
        ready.close()


def _ready_for_thread() -> _Ready | None:
    """The spool files of the AE whose DUL thread is decoding this message."""
    assoc = getattr(threading.current_thread(), "assoc", None)
    ae = getattr(assoc, "ae", None)
    try:
        return _ready.get(ae) if ae is not None else None
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def _named_temporary_file(*args: Any, **kwargs: Any) -> Any:
    ready = _ready_for_thread()
    if ready is None:  # another AE in this process: pynetdicom's own behaviour
        return tempfile.NamedTemporaryFile(*args, **kwargs)
    return ready.take()


def install(file_meta_too: bool = True) -> bool:
    """Make pynetdicom receive C-STORE datasets into files spooled in the registered
    directories (and, with ``file_meta_too``, memoise their File Meta); return whether
    spooling into registered directories is active (if pynetdicom differs, its own temp
    files are used and the handler copies them)."""
    global _installed
    from pynetdicom import dimse_messages

    chunked_datasets()
    if _installed:
        return True
    if getattr(dimse_messages, "NamedTemporaryFile", None) is not tempfile.NamedTemporaryFile:
        log.info("spooling into the store not applied: pynetdicom differs from 3.0.x")
        return False
    dimse_messages.NamedTemporaryFile = _named_temporary_file  # type: ignore[attr-defined]
    if file_meta_too and not file_meta.install():
        log.info("File Meta encoding not memoised: pynetdicom differs from 3.0.x")
    _installed = True
    return True


def chunked_datasets() -> None:
    """pynetdicom's public switch: C-STORE datasets arrive in a file, not in memory."""
    from pynetdicom import _config

    _config.STORE_RECV_CHUNKED_DATASET = True


def dataset_offset(head: bytes) -> int:
    """Where the dataset starts in a spooled file (after preamble and File Meta).

    Raises ValueError if ``head`` (the file's first bytes) does not start with a preamble
    and an explicit VR little endian (0002,0000) File Meta Information Group Length.
    """
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        raise ValueError("not a DICOM file with a File Meta group length")
    return 144 + int.from_bytes(head[140:144], "little")
