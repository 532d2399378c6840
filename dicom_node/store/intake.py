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
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from dataclasses import replace as replace_fields
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dicom_node import metrics
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import DuplicateInstance, Receipt, Recorder
from dicom_node.store.claims import KeyedLock
from dicom_node.store.errors import StoreError
from dicom_node.store.origin import DIMSE, Noted, Origin, OriginRecords, instance_record
from dicom_node.store.series_lock import placing, remove_if_left_empty
from dicom_node.store.writer import InstanceStore, Placed

log = logging.getLogger(__name__)

STORED = "stored"
DUPLICATE = "duplicate"


# Instances kept together by :meth:`Intake.keep_all`: each holds its claim, and each
# series its directory's descriptor and lock, until the one index transaction committed.
BATCH = 64


class IndexFailed(Exception):
    """The index could not record the instance; the file placed for it was removed."""


@dataclass(frozen=True)
class Arrival:
    """An instance received and checked, spooled under ``incoming/``: what
    :meth:`Intake.keep` takes."""

    spooled: Path
    header: InstanceHeader
    receipt: Receipt
    synced: Future[None] | None = None  # an fsync of ``spooled`` already under way
    kind: str = DIMSE


# What :meth:`Intake.keep_all` made of each arrival: STORED, DUPLICATE, or the error
# :meth:`Intake.keep` would have raised.
Outcome = str | StoreError | IndexFailed


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
                remove_if_left_empty(path.parent)

    def keep_all(self, arrivals: list[Arrival]) -> list[Outcome]:
        """:meth:`keep` for many instances (a STOW-RS request's parts): each gets the
        outcome :meth:`keep` would have given it, one after the other, in fewer steps. Up
        to :data:`BATCH` at a time are checked for duplicates and placed, their fsyncs
        waited for together, and the new ones indexed in one transaction (one by one if
        that fails). A copy of an instance that came earlier in the list is kept after
        it, by :meth:`keep`."""
        outcomes: list[Outcome | None] = [None] * len(arrivals)
        seen: set[str] = set()
        first: list[int] = []
        copies: list[int] = []
        for i, arrival in enumerate(arrivals):
            uid = arrival.header.sop_instance_uid
            (copies if uid in seen else first).append(i)
            seen.add(uid)
        for start in range(0, len(first), BATCH):
            self._keep_batch(arrivals, first[start : start + BATCH], outcomes)
        for i in copies:
            a = arrivals[i]
            outcomes[i] = _outcome(self.keep, a.spooled, a.header, a.receipt, a.synced, a.kind)
        done = [o for o in outcomes if o is not None]
        assert len(done) == len(arrivals), "an arrival was left without an outcome"
        return done

    def _keep_batch(
        self, arrivals: list[Arrival], batch: list[int], outcomes: list[Outcome | None]
    ) -> None:
        """:meth:`keep_all` for ``batch`` (indexes into ``arrivals``, no SOP Instance UID
        twice): its outcomes filled in."""
        paths = {i: self._path(arrivals[i].header) for i in batch}
        series = sorted({path.parent for path in paths.values()})
        fresh = [d for d in series if not d.is_dir()]  # this batch may create them
        try:
            with ExitStack() as held:
                # Claims in one order (no two batches wait for each other), then each
                # series directory once, as :meth:`keep` takes them.
                for i in sorted(batch, key=lambda i: arrivals[i].header.sop_instance_uid):
                    held.enter_context(self._claims.hold(arrivals[i].header.sop_instance_uid))
                for directory in series:
                    try:
                        held.enter_context(placing(self.store, directory))
                    except StoreError as err:
                        for i in batch:
                            if paths[i].parent == directory:
                                outcomes[i] = err
                self._place_batch(
                    arrivals, [i for i in batch if outcomes[i] is None], paths, outcomes
                )
        finally:
            for directory in fresh:
                if not any(outcomes[i] == STORED for i in batch if paths[i].parent == directory):
                    remove_if_left_empty(directory)

    def _place_batch(
        self,
        arrivals: list[Arrival],
        batch: list[int],
        paths: dict[int, Path],
        outcomes: list[Outcome | None],
    ) -> None:
        """Place the new instances of ``batch`` (an indexed one goes through
        :meth:`keep`'s steps alone), then wait for them to be durable and index them."""
        indexed = self.recorder.existing_paths([arrivals[i].header.sop_instance_uid for i in batch])
        placed: list[tuple[int, Noted, Placed]] = []
        for i in batch:
            a, path = arrivals[i], paths[i]
            origin = Origin(
                a.kind, a.receipt.called_ae, a.receipt.calling_ae, a.receipt.peer_address
            )
            if a.header.sop_instance_uid in indexed:  # the duplicate policy decides
                outcomes[i] = _outcome(
                    self._keep, a.spooled, a.header, a.receipt, a.synced, origin, path
                )
                continue
            try:
                noted = self.origins.note(path, origin)
            except StoreError as err:
                outcomes[i] = err
                continue
            try:
                placed.append((i, noted, self.store.place(a.spooled, path, a.synced)))
            except StoreError as err:
                noted.undo()
                outcomes[i] = err
        self._commit_batch(arrivals, placed, paths, outcomes)

    def _commit_batch(
        self,
        arrivals: list[Arrival],
        placed: list[tuple[int, Noted, Placed]],
        paths: dict[int, Path],
        outcomes: list[Outcome | None],
    ) -> None:
        """Wait for placed instances to be durable, then index them in one transaction."""
        durable: list[tuple[int, Noted, Placed]] = []
        for i, noted, at in placed:
            try:
                at.wait_durable()
            except StoreError as err:
                self._discard(paths[i], arrivals[i].header.sop_instance_uid)
                self._undo_if_gone(noted, paths[i])
                outcomes[i] = err
                continue
            durable.append((i, noted, at))
        receipts = {
            i: replace_fields(arrivals[i].receipt, path=str(paths[i]), size=at.size)
            for i, _, at in durable
        }
        try:
            self.recorder.record_all([(arrivals[i].header, receipts[i]) for i, _, _ in durable])
        except Exception as err:  # noqa: BLE001 - each is tried alone, as keep() would
            log.debug("indexing %d instances at once failed (%s): one by one", len(durable), err)
            for i, noted, at in durable:
                header = arrivals[i].header
                outcomes[i] = _outcome(self._commit, at, header, receipts[i], noted, None, paths[i])
            return
        for i, _, at in durable:
            outcomes[i] = self._stored(arrivals[i].header, receipts[i], None, paths[i], at.size)

    def _path(self, header: InstanceHeader) -> Path:
        return self.store.path_for(header.study_uid, header.series_uid, header.sop_instance_uid)

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
        return self._commit(placed, header, receipt, noted, existing, path)

    def _commit(
        self,
        placed: Placed,
        header: InstanceHeader,
        receipt: Receipt,
        noted: Noted,
        existing: str | None,
        path: Path,
    ) -> str:
        """Wait for a placed instance to be durable and index it (with one retry when
        another process indexed it or opened its group meanwhile); on failure remove
        what this receive placed."""
        sop_uid = header.sop_instance_uid
        replace = self.policy == "replace"
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
                        # The row there is the other copy's: so is the origin record.
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
            raise self._index_failed(err, header, path, noted, existing) from err
        return self._stored(header, receipt, existing, path, placed.size)

    def _index_failed(
        self,
        err: Exception,
        header: InstanceHeader,
        path: Path,
        noted: Noted,
        existing: str | None,
    ) -> IndexFailed:
        """Log a failed index row and remove the file placed for it."""
        log.error(
            "instance %s of study %s: indexing failed: %s: %s",
            header.sop_instance_uid,
            header.study_uid,
            type(err).__name__,
            err,
        )
        log.debug("indexing failed", exc_info=True)
        if existing is None:
            self._discard(path, header.sop_instance_uid)
            self._undo_if_gone(noted, path)
        return IndexFailed(type(err).__name__)

    def _stored(
        self,
        header: InstanceHeader,
        receipt: Receipt,
        existing: str | None,
        path: Path,
        size: int,
    ) -> str:
        """After the row committed: the replaced copy's file, the log and the metrics."""
        sop_uid = header.sop_instance_uid
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
        metrics.BYTES_RECEIVED.labels(receipt.called_ae).inc(size)
        log.debug(
            "stored %s of study %s from %s (%d bytes)",
            sop_uid,
            header.study_uid,
            receipt.calling_ae,
            size,
        )
        return STORED


def _outcome(keep: Callable[..., str], *args: Any) -> Outcome:
    """What ``keep(*args)`` returned, or the error it raised for its instance."""
    try:
        return keep(*args)
    except (StoreError, IndexFailed) as err:
        return err
