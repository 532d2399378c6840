"""Scheduled clean-up: old finished jobs with their results, and old received instances.

Never deletes an instance that a pending job (queued, running, delivering, failed) still
needs, nor one whose group has not been routed yet.
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


def _old_instances(cutoff: dt.datetime) -> Select:
    """Instances received before ``cutoff`` whose group was routed (or ended)."""
    return (
        select(Instance.id, Instance.sop_instance_uid, Instance.path)
        .join(Group, Group.id == Instance.group_id)
        .where(Instance.received_at < cutoff, Group.state.not_in([OPEN, COMPLETE]))
    )


@dataclass(frozen=True)
class RetentionReport:
    jobs: int = 0
    results: int = 0
    instances: int = 0
    bytes_freed: int = 0


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
    ) -> None:
        """``store``: the node's store, whose emptied series and study directories are
        removed too, under ``instances/`` and ``results/`` (without it only the files
        and their origin records are)."""
        self.db = db
        self.store = store
        self.settings = settings
        self._scheduler: BackgroundScheduler | None = None

    def run_once(self, now: dt.datetime | None = None) -> RetentionReport:
        """One clean-up pass; safe to run while the node serves."""
        now = now or utcnow()
        cfg = self.settings()
        jobs = results = instances = freed = 0
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
            instances, freed_instances = self._delete_instances(
                now - dt.timedelta(days=cfg.instances_days)
            )
            freed += freed_instances
        report = RetentionReport(jobs, results, instances, freed)
        if jobs or instances:
            log.info(
                "retention: deleted %d job(s) with %d result file(s), %d instance(s); "
                "%.1f MB freed",
                jobs,
                results,
                instances,
                freed / 1e6,
            )
        return report

    def _delete_instances(self, cutoff: dt.datetime) -> tuple[int, int]:
        """Delete the instances received before ``cutoff`` that nothing needs any more,
        series by series, each while no receiver places into it (else at the next
        pass): its files with their origin records, its rows, and, once no instance is
        left in it, the series' origin record and directory (and an emptied study
        directory). Returns (instances deleted, bytes freed)."""
        with self.db.session() as s:
            needed: set[str] = set()
            for uids in s.scalars(select(Job.instance_uids).where(Job.state.in_(ACTIVE_STATES))):
                needed.update(uids or [])
            rows = s.execute(_old_instances(cutoff)).all()
        by_series: dict[Path, list[int]] = {}
        for r in rows:
            if r.sop_instance_uid not in needed:
                by_series.setdefault(Path(r.path).parent, []).append(r.id)
        deleted = freed = 0
        for series, ids in by_series.items():
            with clearing(series) as alone:
                if not alone and series.is_dir():
                    log.debug("retention: %s is receiving, left for the next pass", series)
                    continue
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
        return deleted, freed

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
