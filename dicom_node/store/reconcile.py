"""Index the stored instance files the index has no row for (startup reconciliation).

SQLite runs the index with ``synchronous=NORMAL``: a power loss can roll back the last
commits while the files they indexed, fsynced before Success, stay on disk. After an
unclean stop (no :data:`CLEAN_MARKER`) the node walks ``instances/`` before it listens,
and every file without a row is checked and read as the receive path does
(:func:`dicom_node.store.check.check_file`, :mod:`dicom_node.index.header`) and recorded
by the receive path's :class:`~dicom_node.index.recorder.Recorder` into its open group,
which study assembly then completes and routes. Its AE titles and peer address come from
the origin record the receive path wrote before it answered Success
(:mod:`dicom_node.store.origin`), never from the file's File Meta (a STOW-RS client
writes that). A file that fails the check, or has no origin record, is left in place and
reported. The indexed paths are loaded in chunks of :data:`CHUNK` rows.

A crash between the creation of a series directory (and its origin record) and the
series' first index row leaves a directory holding no instance, which retention (it
visits series that have rows) never removes: reconciliation removes it, held as
retention holds a series (:mod:`dicom_node.store.series_lock`), and a study directory
left empty.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from sqlalchemy import select

from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.index.header import (
    HEADER_TAGS,
    HeaderError,
    InstanceHeader,
    header_from_elements,
    parse_file_header,
)
from dicom_node.index.recorder import DuplicateInstance, Receipt, Recorder
from dicom_node.index.tables import Instance
from dicom_node.store.check import PixelDataMismatch, StructureError, check_file
from dicom_node.store.origin import Origin, OriginError, origin_of
from dicom_node.store.series_lock import clearing, holds_no_instance, remove_if_empty
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

CLEAN_MARKER = ".clean-shutdown"  # in the store's root: written on an orderly stop
CHUNK = 50_000  # indexed paths loaded per query

REINDEXED = "reindexed"
UNREADABLE = "unreadable"
DUPLICATE = "duplicate"  # the SOP Instance UID is indexed under another file
NO_ORIGIN = "no_origin"  # no origin record: where it came from is unknown


@dataclass
class Outcome:
    """What was (or, on a dry run, would be) done with one unindexed file."""

    path: Path
    outcome: str  # REINDEXED | UNREADABLE | DUPLICATE | NO_ORIGIN
    reason: str = ""
    study_uid: str = ""


@dataclass
class Report:
    seen: int = 0
    seconds: float = 0.0
    files: list[Outcome] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)  # emptied directories removed

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    def summary(self) -> str:
        return (
            f"{self.seen} file(s) seen, {self.count(REINDEXED)} re-indexed, "
            f"{self.count(UNREADABLE)} unreadable, {self.count(DUPLICATE)} duplicate, "
            f"{self.count(NO_ORIGIN)} without origin record, "
            f"{len(self.leftovers)} empty director(ies) removed, {self.seconds:.1f} s"
        )


def instance_files(store: InstanceStore) -> Iterator[Path]:
    """The ``instances/{study}/{series}/{sop}.dcm`` files of ``store`` (not the origin
    records beside them, ``*.json``)."""
    if not store.instances.is_dir():
        return
    for study in os.scandir(store.instances):
        if not study.is_dir(follow_symlinks=False):
            continue
        for series in os.scandir(study.path):
            if not series.is_dir(follow_symlinks=False):
                continue
            for f in os.scandir(series.path):
                if f.name.endswith(".dcm") and f.is_file(follow_symlinks=False):
                    yield Path(f.path)


def indexed_paths(db: Database, chunk: int = CHUNK) -> set[str]:
    """Every indexed file path, read in chunks of ``chunk`` rows (keyset by id)."""
    paths: set[str] = set()
    last = 0
    with db.engine.connect() as conn:
        while True:
            rows = conn.execute(
                select(Instance.id, Instance.path)
                .where(Instance.id > last)
                .order_by(Instance.id)
                .limit(chunk)
            ).all()
            if not rows:
                return paths
            paths.update(r.path for r in rows)
            last = rows[-1].id


@dataclass(frozen=True)
class Stored:
    """What a stored file says of itself (its header and transfer syntax), and where the
    node's origin record says it came from."""

    header: InstanceHeader
    transfer_syntax: str
    origin: Origin


def read_stored(path: Path) -> tuple[InstanceHeader, str]:
    """The header and transfer syntax of a stored file, checked as the receive path
    checks a spooled one; raises HeaderError, StructureError or PixelDataMismatch."""
    try:
        ts = str(read_file_meta_info(path).TransferSyntaxUID)
    except Exception as err:  # pydicom raises many kinds on garbage
        raise HeaderError(f"no readable File Meta: {type(err).__name__}: {err}") from err
    elements = check_file(path, ts, HEADER_TAGS)
    if elements is not None:
        return header_from_elements(elements, ts), ts
    return parse_file_header(path, ts), ts  # deflated: not walked, parsed as on receive


def _examine(
    store: InstanceStore,
    path: Path,
    owners: dict[Path, Origin | str],
    unrecorded: Origin | None,
) -> tuple[Outcome, Stored | None]:
    try:
        header, ts = read_stored(path)
    except (HeaderError, StructureError, PixelDataMismatch, OSError) as err:
        return Outcome(path, UNREADABLE, str(err)), None
    expected = store.path_for(header.study_uid, header.series_uid, header.sop_instance_uid)
    if expected != path:
        reason = f"its UIDs place it at {expected}"
        return Outcome(path, UNREADABLE, reason, header.study_uid), None
    try:
        origin = origin_of(path, owners)
    except OriginError as err:
        if unrecorded is None:
            return Outcome(path, NO_ORIGIN, str(err), header.study_uid), None
        reason = f"{err}: indexed as received on {unrecorded.called_ae} (stated by the admin)"
        outcome = Outcome(path, REINDEXED, reason, header.study_uid)
        return outcome, Stored(header, ts, unrecorded)
    return Outcome(path, REINDEXED, study_uid=header.study_uid), Stored(header, ts, origin)


def reconcile(
    store: InstanceStore,
    db: Database,
    recorder: Recorder,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    unrecorded: Origin | None = None,
) -> Report:
    """Index every file of ``store`` that has no index row (nothing on a dry run), with
    the origin its record names. A file without an origin record is left in place, or,
    given ``unrecorded`` (an origin the admin states, e.g. for a store written before
    origin records), indexed with that origin."""
    started = time.monotonic()
    report = Report()
    known = indexed_paths(db)
    owners: dict[Path, Origin | str] = {}  # series records read so far
    for path in instance_files(store):
        report.seen += 1
        if progress is not None:
            progress(1)
        if str(path) in known:
            continue
        outcome, stored = _examine(store, path, owners, unrecorded)
        if stored is not None and not dry_run:
            try:
                _record(recorder, path, stored)
            except DuplicateInstance:
                outcome = Outcome(path, DUPLICATE, "SOP Instance UID indexed with another file")
        report.files.append(outcome)
        if outcome.outcome != REINDEXED:
            log.warning("stored file %s not indexed: %s (left in place)", path, outcome.reason)
        if not dry_run:
            metrics.RECONCILED.labels(outcome.outcome).inc()
    report.leftovers = remove_leftovers(store, known, dry_run=dry_run)
    report.seconds = time.monotonic() - started
    return report


def _subdirs(folder: Path) -> list[Path]:
    """The directories in ``folder`` (none if it went meanwhile)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))


def _remove_series(series: Path, dry_run: bool) -> bool:
    """Remove ``series`` if it holds nothing but origin records and no receiver holds
    it (on a dry run: whether it would be removed)."""
    try:
        with clearing(series) as alone:
            if not alone:
                return False
            return holds_no_instance(series) if dry_run else remove_if_empty(series)
    except OSError as err:
        log.warning("cannot remove the series directory %s: %s", series, err)
        return False


def _remove_study(study: Path, dry_run: bool) -> bool:
    """Remove the study directory ``study`` if it is empty (on a dry run: whether it
    holds nothing but directories, the series that would be removed)."""
    try:
        if dry_run:
            with os.scandir(study) as entries:
                return all(e.is_dir(follow_symlinks=False) for e in entries)
        study.rmdir()
    except FileNotFoundError:
        return True  # removed with its last series
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            log.warning("cannot remove the study directory %s: %s", study, err)
        return False
    return True


def remove_leftovers(
    store: InstanceStore, indexed: set[str], *, dry_run: bool = False
) -> list[Path]:
    """Remove the series directories of ``store`` that hold no instance file and contain
    none of the ``indexed`` paths, with their origin records, and the study directories
    that leaves empty (on a dry run: list them). A series a receiver holds stays.
    Returns the directories removed, each series before its study."""
    in_use = {os.path.dirname(p) for p in indexed}
    removed: list[Path] = []
    for study in _subdirs(store.instances):
        left = False
        for series in _subdirs(study):
            if str(series) not in in_use and _remove_series(series, dry_run):
                removed.append(series)
            else:
                left = True
        if not left and _remove_study(study, dry_run):
            removed.append(study)
    if not dry_run:
        for d in removed:
            log.info("removed %s: no instance and no index row (left by a crash)", d)
    return removed


def _record(recorder: Recorder, path: Path, stored: Stored) -> None:
    header, origin = stored.header, stored.origin
    st = path.stat()
    receipt = Receipt(
        called_ae=origin.called_ae,
        calling_ae=origin.calling_ae,
        peer_address=origin.peer_address,
        transfer_syntax=stored.transfer_syntax,
        path=str(path),
        size=st.st_size,
        # The file was linked into place from its spool file, written as it arrived.
        received_at=datetime.fromtimestamp(st.st_mtime, UTC).replace(tzinfo=None),
    )
    recorder.record(header, receipt)
    log.info(
        "re-indexed %s of study %s (%s) as received by %s on %s from %s",
        header.sop_instance_uid,
        header.study_uid,
        path,
        origin.kind,
        origin.called_ae,
        origin.calling_ae,
    )
    if header.bounded:  # values indexed clipped or left out (too long, NUL, several)
        log.warning(
            "re-indexed instance %s of study %s: %s (the file keeps the values whole)",
            header.sop_instance_uid,
            header.study_uid,
            "; ".join(header.bounded),
        )


def has_files(store: InstanceStore) -> bool:
    """Whether the store holds any instance directory at all."""
    return store.instances.is_dir() and any(store.instances.iterdir())


def start_unclean(store: InstanceStore) -> bool:
    """Remove the clean-stop marker durably; return True if it was missing (the
    previous run did not stop in order)."""
    marker = store.root / CLEAN_MARKER
    try:
        marker.unlink()
    except FileNotFoundError:
        return True
    fd = os.open(store.root, os.O_RDONLY)  # the removal must be durable before any commit
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return False


def mark_clean(store: InstanceStore) -> None:
    """Write the clean-stop marker durably (the index is durable by then)."""
    marker = store.root / CLEAN_MARKER
    with open(marker, "w") as fh:
        fh.write(f"{datetime.now(UTC).isoformat()}\n")
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(store.root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
