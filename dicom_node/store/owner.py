"""One serving node per data directory.

``serve`` owns its store: at start it clears ``incoming/`` (the spool of what it is
receiving) and reconciles ``instances/`` with the index. A second ``serve`` started on
the same directory (the same service started twice) did both under a running node: the
C-STOREs that node was receiving failed, and files it had placed but not yet indexed were
indexed by the other. :func:`hold` takes an ``flock`` on ``data_dir/dicom-node.lock``
before the store is touched; the kernel lets go of it when the process ends, however it
ends (kill -9 included), so it never needs cleaning up. Job workers sharing the
directory (``worker.inputs: shared``) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILENAME = "dicom-node.lock"


class DataDirInUse(RuntimeError):
    """Another node process serves this data directory."""


def hold(data_dir: Path) -> int:
    """Take ``data_dir`` for this process; return the descriptor that holds it (closing
    it lets go). Raises DataDirInUse if another process holds it."""
    path = Path(data_dir) / LOCK_FILENAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(
            f"another dicom-node serves {Path(data_dir).resolve()} (it holds {path.name})"
        ) from None
    return fd


def let_go(fd: int) -> None:
    """Release the data directory held by ``fd``."""
    os.close(fd)
