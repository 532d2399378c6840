"""Study assembly: complete open groups whose quiet period has passed.

Open groups and their deadlines live in the database, so a restarted node picks them up.
On start, open groups get at least one more quiet period (the sender could not reach a
stopped node), then a poller thread completes each group once its deadline passes. A
group a callback could not take further (routing failed on a full disk, say) stays
``complete`` and is offered again after ``retry_seconds``, backing off to
:data:`MAX_RETRY_SECONDS` while it keeps failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update

from dicom_node import metrics
from dicom_node.db import Database, utcnow
from dicom_node.index.tables import COMPLETE, OPEN, Group
from dicom_node.settings.node import AETitleSettings

log = logging.getLogger(__name__)

GroupCallback = Callable[[list[int]], None]
MAX_RETRY_SECONDS = 300.0


class Assembler:
    """Completes groups after their quiet period; calls ``on_complete`` with their ids."""

    def __init__(
        self,
        db: Database,
        ae_settings: Callable[[str], AETitleSettings | None],
        lock: threading.Lock,
        *,
        interval: float = 0.25,
        retry_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.ae_settings = ae_settings
        self.lock = lock
        self.interval = interval
        self.retry_seconds = retry_seconds
        self.callbacks: list[GroupCallback] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_complete(self, callback: GroupCallback) -> None:
        """Register ``callback(group_ids)``, called after groups become ``complete``."""
        self.callbacks.append(callback)

    def recover(self, now: datetime | None = None) -> int:
        """Give every open group at least one quiet period from now; return how many."""
        now = now or utcnow()
        n = 0
        with self.lock, self.db.session() as s:
            for g in s.scalars(select(Group).where(Group.state == OPEN)):
                ae = self.ae_settings(g.called_ae)
                quiet = ae.quiet_seconds if ae else 5.0
                g.deadline = max(g.deadline, now + timedelta(seconds=quiet))
                n += 1
        if n:
            log.info("resuming %d open group(s) left by the previous run", n)
        return n

    def complete_due(self, now: datetime | None = None) -> list[int]:
        """Move every open group whose deadline passed to ``complete``; return their ids."""
        now = now or utcnow()
        with self.lock, self.db.session() as s:
            due = s.execute(
                select(
                    Group.id,
                    Group.called_ae,
                    Group.study_uid,
                    Group.instance_count,
                    Group.patient_id,
                ).where(Group.state == OPEN, Group.deadline <= now)
            ).all()
            if not due:
                return []
            s.execute(
                update(Group)
                .where(Group.id.in_([d.id for d in due]), Group.state == OPEN)
                .values(state=COMPLETE, completed_at=now)
            )
        for d in due:
            metrics.GROUPS_COMPLETED.labels(d.called_ae).inc()
            log.info(
                "group %d complete: study %s patient %s, %d instance(s) on %s",
                d.id,
                d.study_uid,
                d.patient_id,
                d.instance_count,
                d.called_ae,
            )
        ids = [d.id for d in due]
        self._notify(ids)
        return ids

    def _notify(self, ids: list[int]) -> None:
        for cb in self.callbacks:
            try:
                cb(ids)
            except Exception:
                log.exception("group-complete callback failed for groups %s", ids)

    def offer_again(self, now: datetime | None = None) -> list[int]:
        """Call the callbacks again with the groups still ``complete`` ``retry_seconds``
        after completing (a callback failed on them); return their ids."""
        if not self.callbacks:
            return []
        before = (now or utcnow()) - timedelta(seconds=self.retry_seconds)
        with self.db.session() as s:
            ids = list(
                s.scalars(
                    select(Group.id)
                    .where(Group.state == COMPLETE, Group.completed_at <= before)
                    .order_by(Group.completed_at, Group.id)
                    .limit(100)
                )
            )
        if ids:
            log.warning("%d group(s) still complete, offered again: %s", len(ids), ids)
            self._notify(ids)
        return ids

    def _run(self) -> None:
        wait = self.retry_seconds
        next_retry = time.monotonic() + wait
        while not self._stop.wait(self.interval):
            try:
                self.complete_due()
                if time.monotonic() >= next_retry:
                    # Back off while groups keep failing; back to the start once none do.
                    wait = (
                        min(wait * 2, MAX_RETRY_SECONDS)
                        if self.offer_again()
                        else self.retry_seconds
                    )
                    next_retry = time.monotonic() + wait
            except Exception as err:
                log.error("assembly poll failed (retrying): %s: %s", type(err).__name__, err)
                log.debug("assembly poll failed", exc_info=True)

    def start(self) -> None:
        """Recover open groups and start the poller thread."""
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="assembler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the poller (open groups stay open in the database)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
