"""Index the stored instance files the index has no row for (startup reconciliation).

SQLite runs the index with ``synchronous=NORMAL``: a power loss can roll back the last
commits while the files they indexed, fsynced before Success, stay on disk. After an
unclean stop (no :data:`CLEAN_MARKER`) the node walks ``instances/`` before it listens,
and every file without a row is checked and read as the receive path does
(:func:`dicom_node.store.check.check_file`, :mod:`dicom_node.index.header`) and recorded
by the receive path's :class:`~dicom_node.index.recorder.Recorder` into its open group,
which study assembly then completes and routes. A file that fails the check is left in
place and reported. The indexed paths are loaded in chunks of :data:`CHUNK` rows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Iterator
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
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

CLEAN_MARKER = ".clean-shutdown"  # in the store's root: written on an orderly stop
CHUNK = 50_000  # indexed paths loaded per query

REINDEXED = "reindexed"
UNREADABLE = "unreadable"
DUPLICATE = "duplicate"  # the SOP Instance UID is indexed under another file


@dataclass
class Outcome:
    """What was (or, on a dry run, would be) done with one unindexed file."""

    path: Path
    outcome: str  # REINDEXED | UNREADABLE | DUPLICATE
    reason: str = ""
    study_uid: str = ""


@dataclass
class Report:
    seen: int = 0
    seconds: float = 0.0
    files: list[Outcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    def summary(self) -> str:
        return (
            f"{self.seen} file(s) seen, {self.count(REINDEXED)} re-indexed, "
            f"{self.count(UNREADABLE)} unreadable, {self.count(DUPLICATE)} duplicate, "
            f"{self.seconds:.1f} s"
        )


def instance_files(store: InstanceStore) -> Iterator[Path]:
    """The ``instances/{study}/{series}/{sop}.dcm`` files of ``store``."""
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
    """What a stored file says of itself: its header, transfer syntax, and the calling
    and called AE titles its File Meta records ("" where it records none)."""

    header: InstanceHeader
    transfer_syntax: str
    sending_ae: str = ""
    receiving_ae: str = ""


def read_stored(path: Path) -> Stored:
    """The header, transfer syntax and AE titles of a stored file, checked as the receive
    path checks a spooled one; raises HeaderError, StructureError or PixelDataMismatch."""
    try:
        meta = read_file_meta_info(path)
        ts = str(meta.TransferSyntaxUID)
    except Exception as err:  # pydicom raises many kinds on garbage
        raise HeaderError(f"no readable File Meta: {type(err).__name__}: {err}") from err
    elements = check_file(path, ts, HEADER_TAGS)
    if elements is not None:
        header = header_from_elements(elements, ts)
    else:  # deflated: not walked, parsed as the receive path does
        header = parse_file_header(path, ts)
    return Stored(
        header,
        ts,
        str(meta.get("SendingApplicationEntityTitle", "") or "").strip(),
        str(meta.get("ReceivingApplicationEntityTitle", "") or "").strip(),
    )


def _origin(
    db: Database, stored: Stored, default_ae: str, served: Collection[str]
) -> tuple[str, str, str | None]:
    """Called AE, calling AE and peer address of a stored file: the AE titles its File
    Meta records when the called one is served here (the node wrote them; the peer
    address only if an indexed instance of its study came from the same calling AE);
    else those of an indexed instance of the same study (the same association, most
    likely); else ``default_ae`` and unknown."""
    with db.engine.connect() as conn:
        row = conn.execute(
            select(Instance.called_ae, Instance.calling_ae, Instance.peer_address)
            .where(Instance.study_uid == stored.header.study_uid)
            .order_by(Instance.id.desc())
            .limit(1)
        ).first()
    if stored.receiving_ae in served:
        peer = row[2] if row and row[1] == stored.sending_ae else None
        return stored.receiving_ae, stored.sending_ae, peer
    return (row[0], row[1], row[2]) if row else (default_ae, "", None)


def _examine(store: InstanceStore, path: Path) -> tuple[Outcome, Stored | None]:
    try:
        stored = read_stored(path)
    except (HeaderError, StructureError, PixelDataMismatch, OSError) as err:
        return Outcome(path, UNREADABLE, str(err)), None
    header = stored.header
    expected = store.path_for(header.study_uid, header.series_uid, header.sop_instance_uid)
    if expected != path:
        reason = f"its UIDs place it at {expected}"
        return Outcome(path, UNREADABLE, reason, header.study_uid), None
    return Outcome(path, REINDEXED, study_uid=header.study_uid), stored


def reconcile(
    store: InstanceStore,
    db: Database,
    recorder: Recorder,
    default_ae: str,
    *,
    served: Collection[str] = (),
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Index every file of ``store`` that has no index row (nothing on a dry run).
    ``served``: the called AE titles of the node (a File Meta naming another one is not
    trusted for the AE titles; ``default_ae`` is the fallback)."""
    started = time.monotonic()
    report = Report()
    known = indexed_paths(db)
    for path in instance_files(store):
        report.seen += 1
        if progress is not None:
            progress(1)
        if str(path) in known:
            continue
        outcome, stored = _examine(store, path)
        if stored is not None and not dry_run:
            try:
                _record(recorder, _origin(db, stored, default_ae, served), path, stored)
            except DuplicateInstance:
                outcome = Outcome(path, DUPLICATE, "SOP Instance UID indexed with another file")
        report.files.append(outcome)
        if outcome.outcome != REINDEXED:
            log.warning("stored file %s not indexed: %s (left in place)", path, outcome.reason)
        if not dry_run:
            metrics.RECONCILED.labels(outcome.outcome).inc()
    report.seconds = time.monotonic() - started
    return report


def _record(
    recorder: Recorder,
    origin: tuple[str, str, str | None],
    path: Path,
    stored: Stored,
) -> None:
    called, calling, peer = origin
    header = stored.header
    st = path.stat()
    receipt = Receipt(
        called_ae=called,
        calling_ae=calling,
        peer_address=peer,
        transfer_syntax=stored.transfer_syntax,
        path=str(path),
        size=st.st_size,
        # The file was linked into place from its spool file, written as it arrived.
        received_at=datetime.fromtimestamp(st.st_mtime, UTC).replace(tzinfo=None),
    )
    recorder.record(header, receipt)
    log.info("re-indexed %s of study %s (%s)", header.sop_instance_uid, header.study_uid, path)


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
