"""Place a received, checked instance and index it, following the duplicate policy.

C-STOREs of one SOP Instance UID take turns in this process (:class:`KeyedLock`), from
the duplicate check until the index row committed, so a second copy racing the first
sees its row; meanwhile retention leaves the instance's series directory alone
(:mod:`dicom_node.store.series_lock`); a series directory it created and kept nothing
in is removed again. Before an instance is placed, where it came from
is recorded durably (:mod:`dicom_node.store.origin`), for start-up reconciliation.
Between processes on one database the unique key decides: the loser's INSERT fails
(:class:`DuplicateInstance`) and it removes only the file it placed, never one the index
refers to.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import replace as replace_fields
from pathlib import Path

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dicom_node import metrics
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import DuplicateInstance, Receipt, Recorder
from dicom_node.store.claims import KeyedLock
from dicom_node.store.errors import StoreError
from dicom_node.store.origin import DIMSE, Noted, Origin, OriginRecords, instance_record
from dicom_node.store.series_lock import clearing, placing, remove_if_empty
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

STORED = "stored"
DUPLICATE = "duplicate"


class IndexFailed(Exception):
    """The index could not record the instance; the file placed for it was removed."""


class Intake:
    """Places and indexes instances in ``store`` under ``policy`` (keep_first|replace)."""

    def __init__(self, store: InstanceStore, recorder: Recorder, policy: str) -> None:
        self.store = store
        self.recorder = recorder
        self.policy = policy
        self.origins = OriginRecords(store)
        self._claims = KeyedLock()  # SOP Instance UIDs being placed and indexed

    def keep(
        self,
        spooled: Path,
        header: InstanceHeader,
        receipt: Receipt,
        synced: Future[None] | None = None,
        kind: str = DIMSE,
    ) -> str:
        """Store the file ``spooled`` (under ``incoming/``) as the instance ``header``
        describes: :data:`STORED`, or :data:`DUPLICATE` if the instance was kept as it
        was. Raises StoreError if the file could not be written, IndexFailed if the row
        could not be; nothing of this instance is left behind then. ``synced``: an fsync
        of ``spooled`` already under way (:meth:`InstanceStore.place`). ``kind``: how it
        arrived (:data:`~dicom_node.store.origin.DIMSE` or ``STOWRS``), recorded with the
        receipt's AE titles and peer address as its origin."""
        origin = Origin(kind, receipt.called_ae, receipt.calling_ae, receipt.peer_address)
        path = self.store.path_for(header.study_uid, header.series_uid, header.sop_instance_uid)
        fresh = not path.parent.is_dir()  # this receive may create the series directory
        outcome = None
        try:
            # The series directory stays (retention waits) until the row committed.
            with self._claims.hold(header.sop_instance_uid), placing(self.store, path.parent):
                outcome = self._keep(spooled, header, receipt, synced, origin, path)
            return outcome
        finally:
            if fresh and outcome != STORED:
                _remove_if_left_empty(path.parent)

    def _duplicate(self, header: InstanceHeader, receipt: Receipt, how: str) -> str:
        metrics.DUPLICATES.labels(self.policy).inc()
        log.info(
            "duplicate %s of study %s from %s%s: kept the first",
            header.sop_instance_uid,
            header.study_uid,
            receipt.calling_ae,
            how,
        )
        return DUPLICATE

    def _discard(self, path: Path, sop_uid: str) -> None:
        """Remove a file this C-STORE placed, unless the index refers to it (another
        process indexed the same instance under the same name meanwhile)."""
        try:
            if self.recorder.existing_path(sop_uid) == str(path):
                return
        except SQLAlchemyError:  # the index is unreachable: keep the file, it is harmless
            log.warning("cannot check the index for %s: its file %s is kept", sop_uid, path)
            return
        self.store.remove(path)

    @staticmethod
    def _undo_if_gone(noted: Noted, path: Path) -> None:
        """Undo the origin record of an instance whose placed file was removed again."""
        if not path.exists():
            noted.undo()

    def _keep(
        self,
        spooled: Path,
        header: InstanceHeader,
        receipt: Receipt,
        synced: Future[None] | None,
        origin: Origin,
        path: Path,
    ) -> str:
        sop_uid = header.sop_instance_uid
        existing = self.recorder.existing_path(sop_uid)
        replace = self.policy == "replace"
        if existing is not None:
            if not replace:
                return self._duplicate(header, receipt, "")
            metrics.DUPLICATES.labels(self.policy).inc()
        noted = self.origins.note(path, origin)
        try:
            placed = self.store.place(spooled, path, synced)
        except StoreError:
            noted.undo()  # what was at ``path`` before is still there
            raise
        receipt = replace_fields(receipt, path=str(path), size=placed.size)
        # The index row commits only once the file and its directory entry are durable:
        # waited for before the recorder's lock, which other instances' rows need.
        try:
            placed.wait_durable()
            for attempt in range(2):
                try:
                    self.recorder.record(header, receipt, replace=existing is not None)
                    break
                except DuplicateInstance:
                    # Another process on this database indexed it meanwhile.
                    existing = self.recorder.existing_path(sop_uid)
                    if not replace or existing is None or attempt:
                        if existing != str(path):
                            self.store.remove(path)
                            noted.undo()
                        return self._duplicate(header, receipt, " (concurrent)")
                except IntegrityError:
                    if attempt:
                        raise
                    # Another process opened the same group meanwhile: retry, joining it.
        except StoreError:
            if existing is None:
                self._discard(path, sop_uid)
                self._undo_if_gone(noted, path)
            raise
        except Exception as err:
            log.error(
                "C-STORE %s of study %s: indexing failed: %s: %s",
                sop_uid,
                header.study_uid,
                type(err).__name__,
                err,
            )
            log.debug("indexing failed", exc_info=True)
            if existing is None:
                self._discard(path, sop_uid)
                self._undo_if_gone(noted, path)
            raise IndexFailed(type(err).__name__) from err
        if existing is not None and existing != str(path):
            self.store.remove(Path(existing))
            instance_record(Path(existing)).unlink(missing_ok=True)  # its own, if any
        if header.bounded:  # values indexed clipped or left out (too long, NUL, several)
            log.warning(
                "instance %s of study %s from %s: %s (the file keeps the values whole)",
                sop_uid,
                header.study_uid,
                receipt.calling_ae,
                "; ".join(header.bounded),
            )
        metrics.INSTANCES_RECEIVED.labels(receipt.called_ae).inc()
        metrics.BYTES_RECEIVED.labels(receipt.called_ae).inc(placed.size)
        log.debug(
            "stored %s of study %s from %s (%d bytes)",
            sop_uid,
            header.study_uid,
            receipt.calling_ae,
            placed.size,
        )
        return STORED


def _remove_if_left_empty(series: Path) -> None:
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
