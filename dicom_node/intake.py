"""The one durable path by which a received instance enters the node.

A C-STORE (:mod:`dicom_node.network.scp`) and a STOW-RS part (:mod:`dicom_node.http.stow`)
both arrive as a file under the store's ``incoming/`` plus its header; :meth:`Intake.accept`
applies the duplicate policy, links the file into place, waits for its fsyncs, indexes it
and adds it to its open group (study assembly). Only when it returns ``ok`` may the caller
answer Success. Each caller keeps only its protocol's own checks (request vs dataset UIDs,
Study UID in the URL) and its way of answering.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from dicom_node import metrics
from dicom_node.db import utcnow
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.store.writer import InstanceStore, StoreError

log = logging.getLogger(__name__)

OUT_OF_RESOURCES = 0xA700
SOP_LOCKS = 64


@dataclass(frozen=True)
class Source:
    """Who sent an instance: the called AE (or the web source's AE title), the caller."""

    called_ae: str
    calling_ae: str
    peer_address: str | None


@dataclass(frozen=True)
class Outcome:
    """What happened to one instance. ``status`` is 0 on success (stored, or a duplicate
    kept), else a DICOM failure status with a short comment and a metrics ``reason``."""

    status: int
    comment: str = ""
    reason: str = ""
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 0


STORED = Outcome(0)
DUPLICATE = Outcome(0, duplicate=True)


class Intake:
    """Duplicate policy, placement with fsync, index row and group, for any protocol."""

    def __init__(self, store: InstanceStore, recorder: Recorder,
                 duplicate_policy: Callable[[], str]) -> None:
        self.store = store
        self.recorder = recorder
        self.duplicate_policy = duplicate_policy
        # Copies of one SOP Instance UID arriving at once (two associations, or parts of
        # one STOW-RS request) take turns: otherwise a copy whose index row lost the race
        # would remove the file the winner had just indexed at the same path.
        self._sop_locks = [threading.Lock() for _ in range(SOP_LOCKS)]

    def _lock_of(self, sop_uid: str) -> threading.Lock:
        return self._sop_locks[zlib.crc32(sop_uid.encode()) % SOP_LOCKS]

    def has_room(self) -> bool:
        """False while the store's free space is below its reserve (answer 0xA700)."""
        return self.store.has_room()

    def accept(self, spooled: Path, header: InstanceHeader, transfer_syntax: str,
               source: Source) -> Outcome:
        """Store the file ``spooled`` (under ``incoming/``) as the instance ``header``
        describes; on failure nothing is left at its final path."""
        with self._lock_of(header.sop_instance_uid):
            return self._accept(spooled, header, transfer_syntax, source)

    def _accept(self, spooled: Path, header: InstanceHeader, transfer_syntax: str,
                source: Source) -> Outcome:
        sop_uid = header.sop_instance_uid
        policy = self.duplicate_policy()
        existing = self.recorder.existing_path(sop_uid)
        if existing is not None:
            metrics.DUPLICATES.labels(policy).inc()
            if policy != "replace":
                log.info("duplicate %s of study %s from %s: kept the first", sop_uid,
                         header.study_uid, source.calling_ae)
                return DUPLICATE
        path = self.store.path_for(header.study_uid, header.series_uid, sop_uid)
        try:
            placed = self.store.place(spooled, path)
        except StoreError as err:
            log.error("instance %s of study %s: %s", sop_uid, header.study_uid, err)
            return Outcome(OUT_OF_RESOURCES, "cannot write the file", "write_failed")
        receipt = Receipt(called_ae=source.called_ae, calling_ae=source.calling_ae,
                          peer_address=source.peer_address, transfer_syntax=str(transfer_syntax),
                          path=str(path), size=placed.size, received_at=utcnow())
        # The index row commits only once the directory fsync of the rename completed.
        record = partial(self.recorder.record, header, receipt, replace=existing is not None,
                         before_commit=placed.wait_durable)
        try:
            try:
                record()
            except IntegrityError:
                if self.recorder.existing_path(sop_uid) is not None:
                    # Another association or request indexed the same instance meanwhile.
                    metrics.DUPLICATES.labels(policy).inc()
                    log.info("duplicate %s of study %s from %s (concurrent)", sop_uid,
                             header.study_uid, source.calling_ae)
                    return DUPLICATE
                # Another process opened the same group meanwhile: retry once, joining it.
                record()
        except StoreError as err:
            log.error("instance %s of study %s: %s", sop_uid, header.study_uid, err)
            if existing is None:
                self.store.remove(path)
            return Outcome(OUT_OF_RESOURCES, "cannot write the file", "write_failed")
        except Exception as err:
            log.exception("instance %s of study %s: indexing failed", sop_uid, header.study_uid)
            if existing is None:
                self.store.remove(path)
            return Outcome(OUT_OF_RESOURCES, f"index failed: {type(err).__name__}",
                           "index_failed")
        if existing is not None and existing != str(path):
            self.store.remove(existing)
        metrics.INSTANCES_RECEIVED.labels(source.called_ae).inc()
        metrics.BYTES_RECEIVED.labels(source.called_ae).inc(placed.size)
        log.debug("stored %s of study %s from %s (%d bytes)", sop_uid, header.study_uid,
                  source.calling_ae, placed.size)
        return STORED
