"""Write each C-STORE dataset to disk while it is being received.

pynetdicom can hand a C-STORE to its handler as a file instead of in memory
(``_config.STORE_RECV_CHUNKED_DATASET``): as soon as the command set has arrived it opens
a ``NamedTemporaryFile``, writes the preamble and File Meta Information, then appends each
P-DATA fragment of the dataset as it is decoded. :func:`install` turns that on and makes
pynetdicom create the file as a :class:`SpoolFile` in the store's ``incoming/`` directory
(same filesystem, so the handler can fsync and rename it into place) for the AEs
registered with :func:`register`.

The node never holds a dataset in memory and never copies it again after receiving it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import uuid
import weakref
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_spool_dirs: weakref.WeakKeyDictionary[Any, Path] = weakref.WeakKeyDictionary()
_installed = False


class SpoolFile:
    """The part of ``NamedTemporaryFile``'s interface pynetdicom uses, unbuffered."""

    def __init__(self, directory: Path, suffix: str = ".dcm") -> None:
        self.name = str(directory / f"{uuid.uuid4().hex}{suffix}")
        self._fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.file = self  # pynetdicom calls ``.file.flush()``

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        total = len(view)
        while view:
            view = view[os.write(self._fd, view):]
        return total

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def register(ae: Any, directory: Path) -> None:
    """Spool the C-STORE datasets received by the pynetdicom ``ae`` into ``directory``."""
    _spool_dirs[ae] = Path(directory)


def _spool_dir() -> Path | None:
    """The spool directory of the AE whose DUL thread is decoding this message."""
    assoc = getattr(threading.current_thread(), "assoc", None)
    ae = getattr(assoc, "ae", None)
    try:
        return _spool_dirs.get(ae) if ae is not None else None
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def _named_temporary_file(*args: Any, **kwargs: Any) -> Any:
    directory = _spool_dir()
    if directory is None:  # another AE in this process: pynetdicom's own behaviour
        return tempfile.NamedTemporaryFile(*args, **kwargs)
    return SpoolFile(directory, kwargs.get("suffix") or ".dcm")


def install() -> bool:
    """Make pynetdicom receive C-STORE datasets into files; return whether spooling into
    registered directories is active (if pynetdicom differs, its own temp files are used
    and the handler copies them)."""
    global _installed
    from pynetdicom import _config, dimse_messages

    _config.STORE_RECV_CHUNKED_DATASET = True
    if _installed:
        return True
    if getattr(dimse_messages, "NamedTemporaryFile", None) is not tempfile.NamedTemporaryFile:
        log.info("spooling into the store not applied: pynetdicom differs from 3.0.x")
        return False
    dimse_messages.NamedTemporaryFile = _named_temporary_file  # type: ignore[attr-defined]
    _installed = True
    return True


def dataset_offset(head: bytes) -> int:
    """Where the dataset starts in a spooled file (after preamble and File Meta).

    Raises ValueError if ``head`` (the file's first bytes) does not start with a preamble
    and an explicit VR little endian (0002,0000) File Meta Information Group Length.
    """
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        raise ValueError("not a DICOM file with a File Meta group length")
    return 144 + int.from_bytes(head[140:144], "little")
