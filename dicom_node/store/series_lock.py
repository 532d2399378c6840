"""Who may change a series directory ``instances/{study}/{series}/``: receivers together,
retention alone.

The receive path holds a *shared* lock on the series directory from its duplicate check
until the instance's index row committed (origin record, placement, fsyncs, row);
retention takes an *exclusive* one, without waiting (or, for a series it found busy
pass after pass, waiting a bounded time), to delete instances of the series and, if none
is left, the series' origin records and its directory. So retention never
removes a directory, or an origin record, that an instance is being placed under, and a
receiver never sees a row that retention is deleting.

The lock is ``flock`` on the directory itself: it holds between threads (each opens the
directory on its own) and between node processes sharing the store, and a process that
dies lets go of it. A receiver that waited for a directory retention removed meanwhile
finds it no longer at its path and starts again (creating it anew). The study directory
needs no lock: retention removes it only when empty (``rmdir``), and a receiver creating
a series in it retries if it went (:meth:`~dicom_node.store.writer.InstanceStore.ensure_dir`).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dicom_node.store.errors import StoreError
from dicom_node.store.origin import INSTANCE_RECORD, SERIES_RECORD
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

_TRIES = 100  # a directory removed under a waiting receiver this often in a row: give up
# s between two tries of a waiting exclusive lock: how finely retention looks for a gap
# between two instances (flock has no timed wait); a mechanism, not an admin setting.
_POLL = 0.005


@contextmanager
def placing(store: InstanceStore, series: Path) -> Iterator[None]:
    """Hold ``series`` (created durably if missing) for placing instances in it, along
    with other receivers; retention cannot remove it meanwhile. Raises StoreError if it
    cannot be created or opened."""
    for _ in range(_TRIES):
        try:
            store.ensure_dir(series)
            fd = os.open(series, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue  # retention removed it (or its study) meanwhile: create it again
        except OSError as err:
            raise StoreError(err.errno, f"cannot open {series.name}: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _still_at(fd, series):
                yield
                return
        finally:
            os.close(fd)  # lets go of the lock
    raise StoreError(errno.EAGAIN, f"series directory {series.name} keeps being removed")


@contextmanager
def clearing(series: Path, wait: float = 0.0) -> Iterator[bool]:
    """Hold ``series`` alone if no receiver holds it: True then, False if a receiver
    does or it is not there (retention tries again on its next pass). Waits up to
    ``wait`` seconds for the receivers to let go (none by default): the lock is tried
    every few ms, so it is taken in a gap between two instances of a busy series."""
    try:
        fd = os.open(series, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        yield False
        return
    try:
        if not _lock_alone(fd, wait):
            yield False
            return
        yield _still_at(fd, series)
    finally:
        os.close(fd)


def _lock_alone(fd: int, wait: float) -> bool:
    """Take the exclusive lock of ``fd``, trying for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)


def _still_at(fd: int, path: Path) -> bool:
    """Whether the directory open as ``fd`` is still the one at ``path``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _only_origin_records(names: list[str]) -> bool:
    return all(n == SERIES_RECORD or n.endswith(INSTANCE_RECORD) for n in names)


def holds_no_instance(series: Path) -> bool:
    """Whether the series directory ``series`` holds nothing but origin records (what
    :func:`remove_if_empty` would remove)."""
    return _only_origin_records(os.listdir(series))


def remove_if_empty(series: Path) -> bool:
    """Remove the series directory ``series`` (held by :func:`clearing`) if no instance
    is left in it: the origin records of instances that are gone, then the series'
    record, then the directory. False, and nothing removed, if anything but origin
    records is there. Its study directory is removed too if that leaves it empty."""
    names = os.listdir(series)
    if not _only_origin_records(names):
        return False
    for name in sorted(names, key=lambda n: n == SERIES_RECORD):  # the series' last
        (series / name).unlink(missing_ok=True)
    series.rmdir()
    try:
        series.parent.rmdir()
    except OSError as err:  # another series is in it, or is being created in it
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            raise
    return True


@contextmanager
def reading(series: Path) -> Iterator[None]:
    """Hold ``series`` shared, as receivers do, without creating it: retention is not
    deleting in it meanwhile (it holds a series alone from its first file's removal
    until its rows' deletion committed). Nothing is held if the directory is gone."""
    try:
        fd = os.open(series, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def remove_if_left_empty(series: Path) -> None:
    """Remove the series directory a receive created but kept nothing in (a duplicate
    naming other Study/Series UIDs than the stored copy, a failed placement or row),
    with its series' origin record and an emptied study directory; retention, which
    visits only series with rows, never would. As retention does: only while no other
    receiver holds it, and only if no instance is in it; otherwise it is left as it is
    (it is in use, or the next instance's)."""
    try:
        with clearing(series) as alone:
            if alone and remove_if_empty(series):
                log.debug("removed the series directory %s: nothing kept in it", series)
    except OSError as err:
        log.warning("cannot remove the empty series directory %s: %s", series, err)
