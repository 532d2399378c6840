"""The node's own results (SR, heatmap SC, ...) made searchable next to received instances.

Jobs record each object they write in ``job_outputs`` (a path, its UIDs). For QIDO-RS
and WADO-RS those objects must look like stored instances, with the same attributes;
:func:`sync` reads the header of every written output not yet known (a few files per job)
into ``result_instances``, a table with the columns of ``instances`` the HTTP face uses,
and drops rows whose output is gone (retention). :func:`catalogue` is the union of both
tables, which the queries select from. Received instances and results stay apart in the
index, so a result never joins a group, a route or a reprocessing.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from sqlalchemy import Column, Index, Integer, Table, delete, func, insert, select, union_all

from dicom_node.db import Base, Database
from dicom_node.index.header import HeaderError, InstanceHeader
from dicom_node.index.tables import Instance
from dicom_node.jobs.models import Job, JobOutput, JobState

log = logging.getLogger(__name__)

#: The ``instances`` columns the HTTP face reads (QIDO attributes, WADO file lookup).
COLUMNS = (
    "sop_instance_uid",
    "sop_class_uid",
    "study_uid",
    "series_uid",
    "patient_id",
    "patient_name",
    "accession_number",
    "study_date",
    "modality",
    "body_part",
    "series_description",
    "view_position",
    "instance_number",
    "transfer_syntax",
    "rows",
    "columns",
    "number_of_frames",
    "study_time",
    "study_description",
    "study_id",
    "series_number",
    "patient_birth_date",
    "patient_sex",
    "referring_physician",
    "series_date",
    "series_time",
    "pps_start_date",
    "pps_start_time",
    "path",
)
_SOURCE = Instance.__table__.c

RESULTS = Table(
    "result_instances",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("output_id", Integer, unique=True, nullable=False),
    *[
        Column(
            name,
            _SOURCE[name].type,
            index=name in ("series_uid", "sop_instance_uid", "modality"),
        )
        for name in COLUMNS
    ],
    Index("ix_result_instances_study_uid_modality", "study_uid", "modality"),
)
#: Job states in which a job's outputs are written and stay.
WRITTEN = (JobState.DELIVERING, JobState.DONE, JobState.FAILED, JobState.DEAD)


@functools.cache
def catalogue() -> Any:
    """Received instances and results as one selectable with the :data:`COLUMNS` (built
    once: statements are immutable, and building its columns costs each query ~1 ms)."""
    return union_all(
        select(*[_SOURCE[n] for n in COLUMNS]), select(*[RESULTS.c[n] for n in COLUMNS])
    ).subquery("catalogue")


def _header_of(path: str) -> tuple[InstanceHeader, str]:
    from dicom_node.http.stow_check import read_file_header

    return read_file_header(path)


class ResultIndex:
    """Keeps ``result_instances`` in step with the job outputs; thread-safe."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._unreadable: set[int] = set()  # warned about once
        self._synced = 0.0
        self._seen: tuple[int, int | None, int] | None = None  # outputs, last id, written
        RESULTS.create(db.engine, checkfirst=True)

    def sync_if_due(self, interval: float = 0.25) -> None:
        """:meth:`sync` unless it ran less than ``interval`` seconds ago."""
        if time.monotonic() - self._synced >= interval:
            self.sync()

    def _outputs_state(self) -> tuple[int, int | None, int]:
        """How many outputs exist, the newest id, how many jobs have written theirs: when
        none changed there is nothing to sync (and no write transaction to take)."""
        with self.db.session() as s:
            count, last = s.execute(select(func.count(), func.max(JobOutput.id))).one()
            written = s.scalar(select(func.count()).select_from(Job).where(Job.state.in_(WRITTEN)))
        return int(count), last, int(written or 0)

    def sync(self) -> int:
        """Index new written outputs and drop removed ones; return how many were added."""
        state = self._outputs_state()
        if state == self._seen:
            self._synced = time.monotonic()
            return 0
        with self._lock, self.db.session() as s:
            s.execute(delete(RESULTS).where(RESULTS.c.output_id.not_in(select(JobOutput.id))))
            new = s.execute(
                select(JobOutput.id, JobOutput.path)
                .join(Job, Job.id == JobOutput.job_id)
                .where(
                    Job.state.in_(WRITTEN),
                    JobOutput.kind != "forward",
                    JobOutput.id.not_in(select(RESULTS.c.output_id)),
                )
            ).all()
            added = 0
            for output_id, path in new:
                if output_id in self._unreadable:
                    continue
                try:
                    header, ts = _header_of(path)
                except (OSError, HeaderError) as err:
                    log.warning("result %s (output %d) cannot be indexed: %s", path, output_id, err)
                    self._unreadable.add(output_id)
                    continue
                values = {k: v for k, v in vars(header).items() if k in COLUMNS}
                s.execute(
                    insert(RESULTS).values(
                        output_id=output_id, transfer_syntax=ts, path=path, **values
                    )
                )
                added += 1
        self._seen = state
        self._synced = time.monotonic()
        return added
