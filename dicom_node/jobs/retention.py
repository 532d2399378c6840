"""Scheduled clean-up: old finished jobs with their results, and old received instances.

Never deletes an instance that a pending job (queued, running, delivering, failed) still
needs, nor one whose group has not been routed yet.

A series being received is skipped (logged and counted) and retried on the next pass;
one found busy pass after pass for :data:`BUSY_BEFORE_WAITING` (a modality that never
stops sending) is waited for, up to ``busy_wait`` seconds, so that it is cleaned all the
same.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Select, delete, select

from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.index.tables import COMPLETE, OPEN, Group, Instance
from dicom_node.jobs.models import (
    ACTIVE_STATES,
    DeliveryAttempt,
    DeliveryResponse,
    Job,
    JobOutput,
    JobState,
    utcnow,
)
from dicom_node.settings.jobs import RetentionSettings
from dicom_node.store.origin import instance_record
from dicom_node.store.series_lock import clearing, remove_if_empty
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

_FINISHED = (JobState.DONE, JobState.DEAD, JobState.CANCELLED)
# Constants, not settings: they decide only how soon a series that never stops being
# received is cleaned (a few passes later), never whether anything is lost (the series
# lock does), and no admin can choose them better from outside: a pass that still finds
# the series held after the wait says so (WARNING, metric) and tries again next pass.
# The wait holds only the retention thread (receivers take the shared lock meanwhile).
# A pass waits for a series that earlier passes, in a row, found busy for at least this
# long (measured from the first of them; at least one earlier pass, so one busy moment
# never costs a wait). Time rather than a count of passes, so that it does not scale with
# ``interval_minutes``: three passes were three days at a daily interval; now that is the
# second pass (and the second at the default hourly one too), while at a one-minute
# interval a series busy now and then is not waited for every third minute.
BUSY_BEFORE_WAITING = dt.timedelta(minutes=10)
BUSY_WAIT = 10.0  # s a pass then waits for the series' receivers to let go


def _old_instances(cutoff: dt.datetime) -> Select:
    """Instances received before ``cutoff`` whose group was routed (or ended)."""
    return (
        select(
            Instance.id,
            Instance.sop_instance_uid,
            Instance.path,
            Instance.study_uid,
            Instance.series_uid,
        )
        .join(Group, Group.id == Instance.group_id)
        .where(Instance.received_at < cutoff, Group.state.not_in([OPEN, COMPLETE]))
    )


@dataclass(frozen=True)
class RetentionReport:
    jobs: int = 0
    results: int = 0
    instances: int = 0
    bytes_freed: int = 0
    series_busy: int = 0  # series being received: their old instances left for later


def _unlink(path: str) -> int:
    p = Path(path)
    try:
        size = p.stat().st_size
        p.unlink()
        return size
    except FileNotFoundError:
        return 0


def _unlink_instance(path: str) -> int:
    """Remove a stored instance and its own origin record, if it has one."""
    size = _unlink(path)
    instance_record(Path(path)).unlink(missing_ok=True)  # after: a stale one is harmless
    return size


class Retention:
    """Deletes what the ``jobs.retention`` settings say is old enough."""

    def __init__(
        self,
        db: Database,
        settings: Callable[[], RetentionSettings],
        *,
        store: InstanceStore | None = None,
        busy_wait: float = BUSY_WAIT,
    ) -> None:
        """``store``: the node's store, whose emptied series and study directories are
        removed too, under ``instances/`` and ``results/`` (without it only the files
        and their origin records are). ``busy_wait``: seconds a pass waits for the
        receivers of a series skipped in a row for :data:`BUSY_BEFORE_WAITING`."""
        self.db = db
        self.store = store
        self.settings = settings
        self.busy_wait = busy_wait
        # Series skipped by the last pass: (passes in a row, when the first of them ran).
        self._busy: dict[Path, tuple[int, dt.datetime]] = {}
        self._scheduler: BackgroundScheduler | None = None

    def run_once(self, now: dt.datetime | None = None) -> RetentionReport:
        """One clean-up pass; safe to run while the node serves."""
        now = now or utcnow()
        cfg = self.settings()
        jobs = results = instances = freed = busy = 0
        emptied: set[Path] = set()  # directories of the result files deleted
        if cfg.jobs_days is not None:
            cutoff = now - dt.timedelta(days=cfg.jobs_days)
            with self.db.session() as s:
                old = s.scalars(
                    select(Job.id).where(Job.state.in_(_FINISHED), Job.finished_at < cutoff)
                ).all()
                if old:
                    outs = s.scalars(
                        select(JobOutput).where(
                            JobOutput.job_id.in_(old), JobOutput.kind != "forward"
                        )
                    ).all()
                    for o in outs:
                        freed += _unlink(o.path)
                        emptied.add(Path(o.path).parent)
                    results += len(outs)
                    s.execute(delete(JobOutput).where(JobOutput.job_id.in_(old)))
                    s.execute(
                        delete(DeliveryResponse).where(
                            DeliveryResponse.attempt_id.in_(
                                select(DeliveryAttempt.id).where(DeliveryAttempt.job_id.in_(old))
                            )
                        )
                    )
                    s.execute(delete(DeliveryAttempt).where(DeliveryAttempt.job_id.in_(old)))
                    s.execute(delete(Job).where(Job.id.in_(old)))
                    jobs = len(old)
            self._remove_emptied_results(emptied)
        if cfg.instances_days is not None:
            instances, freed_instances, busy = self._delete_instances(
                now - dt.timedelta(days=cfg.instances_days), now
            )
            freed += freed_instances
        report = RetentionReport(jobs, results, instances, freed, busy)
        if jobs or instances or busy:
            log.info(
                "retention: deleted %d job(s) with %d result file(s), %d instance(s); "
                "%.1f MB freed; %d series being received left for the next pass",
                jobs,
                results,
                instances,
                freed / 1e6,
                busy,
            )
        return report

    def _delete_instances(self, cutoff: dt.datetime, now: dt.datetime) -> tuple[int, int, int]:
        """Delete the instances received before ``cutoff`` that nothing needs any more,
        series by series, each while no receiver places into it (else at the next
        pass): its files with their origin records, its rows, and, once no instance is
        left in it, the series' origin record and directory (and an emptied study
        directory). Returns (instances deleted, bytes freed, series left busy)."""
        with self.db.session() as s:
            needed: set[str] = set()
            for uids in s.scalars(select(Job.instance_uids).where(Job.state.in_(ACTIVE_STATES))):
                needed.update(uids or [])
            rows = s.execute(_old_instances(cutoff)).all()
        by_series: dict[Path, list[int]] = {}
        names: dict[Path, tuple[str, str]] = {}  # series -> (study UID, series UID)
        for r in rows:
            if r.sop_instance_uid not in needed:
                by_series.setdefault(Path(r.path).parent, []).append(r.id)
                names[Path(r.path).parent] = (r.study_uid, r.series_uid)
        deleted = freed = 0
        skipped, self._busy = self._busy, {}
        for series, ids in by_series.items():
            skips, since = skipped.get(series, (0, now))
            wait = self.busy_wait if skips and now - since >= BUSY_BEFORE_WAITING else 0.0
            study_uid, series_uid = names[series]
            if wait:
                log.info(
                    "retention: series %s of study %s skipped %d passes in a row since %s: "
                    "waiting up to %g s for its receivers",
                    series_uid,
                    study_uid,
                    skips,
                    f"{since:%Y-%m-%d %H:%M:%S}",
                    wait,
                )
            with clearing(series, wait) as alone:
                if not alone and series.is_dir():
                    self._left_busy(series, study_uid, series_uid, (skips + 1, since), wait)
                    continue
                if alone and wait:
                    metrics.RETENTION_SERIES_BUSY.labels("waited").inc()
                # Not alone and no directory: rows whose files are gone. A receiver may
                # be creating the directory now, so nothing is unlinked then.
                with self.db.session() as s:  # what is still old: not replaced meanwhile
                    doomed = s.execute(_old_instances(cutoff).where(Instance.id.in_(ids))).all()
                    for r in doomed if alone else ():
                        freed += _unlink_instance(r.path)
                    if doomed:
                        s.execute(delete(Instance).where(Instance.id.in_([r.id for r in doomed])))
                deleted += len(doomed)
                if alone and self._stores(series):
                    remove_if_empty(series)
        return deleted, freed, len(self._busy)

    def _left_busy(
        self,
        series: Path,
        study_uid: str,
        series_uid: str,
        busy: tuple[int, dt.datetime],
        waited: float,
    ) -> None:
        """Remember, log and count a series left for the next pass: a receiver held it
        (``busy``: passes in a row, since when), even after ``waited`` seconds."""
        self._busy[series] = busy
        skips = busy[0]
        metrics.RETENTION_SERIES_BUSY.labels("skipped").inc()
        log.log(
            logging.WARNING if waited else logging.INFO,
            "retention: series %s of study %s is being received: left for the next pass "
            "(%d pass(es) in a row%s)",
            series_uid,
            study_uid,
            skips,
            f", after waiting {waited:g} s" if waited else "",
        )

    def _remove_emptied_results(self, dirs: set[Path]) -> None:
        """Remove those of ``dirs`` (``results/{study}/{series}/``) that deleting their
        result files emptied, and a study directory that left empty; never
        ``results/`` itself, nor a directory outside it. ``rmdir`` removes only an empty
        one, so a job writing into the study meanwhile keeps it (or creates it again:
        :meth:`~dicom_node.store.writer.InstanceStore.ensure_dir`)."""
        if self.store is None:
            return
        root = self.store.root / "results"
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            while d != root and d.is_relative_to(root):
                try:
                    d.rmdir()
                except OSError as err:  # in use, gone, or not ours to remove
                    if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        log.warning("retention: cannot remove %s: %s", d, err)
                    break
                d = d.parent

    def _stores(self, series: Path) -> bool:
        """Whether ``series`` is a series directory of the node's store."""
        return self.store is not None and series.parent.parent == self.store.instances

    def start(self) -> None:
        """Run every ``interval_minutes`` in a background scheduler."""
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(
            self._safe_run,
            "interval",
            minutes=self.settings().interval_minutes,
            id="retention",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()

    def _safe_run(self) -> None:
        try:
            self.run_once()
        except Exception:
            log.exception("retention pass failed; it will run again at the next interval")

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
