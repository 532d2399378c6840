"""Route a stored study again under the current configuration (``studies reprocess``).

A group is routed once: its jobs are unique per (group, rule), so neither ``jobs retry``
(which re-runs a job as it was queued, mistyped model and all) nor re-sending the study
(kept-first duplicates make no new group) can apply a corrected configuration. A
reprocess records a new group for each stored group of the study (same AEs, same
instances, its note naming the group it repeats), routes it with the current rules and
queues new jobs. Their results get the same deterministic UIDs as before for the same
model and inputs, so at the destination they replace the earlier objects rather than
adding copies.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dicom_node.db import utcnow
from dicom_node.index.tables import COMPLETE, OPEN, UNROUTED, Group, Instance
from dicom_node.jobs.models import ACTIVE_STATES, Job
from dicom_node.routing.groups import GroupRouter, group_facts

log = logging.getLogger(__name__)

REPROCESSING = "reprocessing"  # a new group between its creation and its routing
# A reprocess's new groups are its claim on the study: they are created, all at once, in
# the transaction that checks that no other reprocess holds one and no job is active, and
# each stays ``reprocessing`` until its jobs are queued. That transaction starts by locking
# the study's group rows (UPDATE: row locks on PostgreSQL, the write lock on SQLite), so
# two reprocesses of one study -- threads of the API, a CLI process, another node on the
# same database -- take turns at the check and the second finds the first's claim or jobs.
# A claim older than this was left by a process that stopped mid-way (a reprocess takes
# seconds); the next reprocess marks it unrouted rather than waiting on it forever.
ABANDONED_AFTER = dt.timedelta(minutes=10)


class ReprocessError(Exception):
    """The study cannot be reprocessed now (not stored, still arriving, jobs pending)."""


@dataclass(frozen=True)
class Reprocessed:
    """One stored group routed again."""

    source_group: int
    group_id: int
    state: str  # routed | unrouted | discarded
    note: str
    job_ids: tuple[int, ...]


def reprocess_study(router: GroupRouter, study_uid: str) -> list[Reprocessed]:
    """Route every stored group of ``study_uid`` again with ``router``'s rules; raises
    ReprocessError if the study cannot be (another reprocess of it, in any process, is
    under way or its jobs are still active)."""
    db = router.db
    with db.session() as s:
        # First statement: the lock that makes the check and the claim below one step.
        s.execute(
            update(Group).where(Group.study_uid == study_uid).values(state=Group.state),
            execution_options={"synchronize_session": False},
        )
        _refuse_if_claimed(s, study_uid)
        group_ids = s.scalars(
            select(Instance.group_id)
            .where(Instance.study_uid == study_uid)
            .distinct()
            .order_by(Instance.group_id)
        ).all()
        if not group_ids:
            raise ReprocessError(f"no stored instance of study {study_uid}")
        groups = s.scalars(select(Group).where(Group.id.in_(group_ids))).all()
        busy = [g for g in groups if g.state in (OPEN, COMPLETE)]
        if busy:
            raise ReprocessError(
                f"study {study_uid} is still being received or routed (group {busy[0].id} "
                f"is {busy[0].state}); reprocess it once that group is routed"
            )
        active = s.scalars(
            select(Job.id).where(Job.study_uid == study_uid, Job.state.in_(ACTIVE_STATES))
        ).all()
        if active:
            raise ReprocessError(
                f"study {study_uid} has job(s) still queued or running "
                f"({', '.join(map(str, active))}); let them finish or cancel them first"
            )
        sources = [(g, group_facts(s, g)) for g in groups]
        now = utcnow()
        claims = [_claim(s, g, len(facts.instances), now) for g, facts in sources]
        s.flush()
        claimed = [(g, new.id, facts) for (g, facts), new in zip(sources, claims, strict=True)]
    done = []
    for source, group_id, facts in claimed:
        prefix = f"reprocess of group {source.id}; "
        router.route_facts(
            group_id, facts, source.first_received, now, from_state=REPROCESSING, note_prefix=prefix
        )
        with db.session() as s:
            state, note = s.execute(
                select(Group.state, Group.route_note).where(Group.id == group_id)
            ).one()
            job_ids = tuple(
                s.scalars(select(Job.id).where(Job.group_id == group_id).order_by(Job.id))
            )
        log.info(
            "study %s: group %s reprocessed as group %s: %s; jobs %s",
            study_uid,
            source.id,
            group_id,
            state,
            list(job_ids),
        )
        done.append(Reprocessed(source.id, group_id, state, note or "", job_ids))
    return done


def _refuse_if_claimed(s: Session, study_uid: str) -> None:
    """Raise ReprocessError if another reprocess of the study holds a claim; mark claims
    abandoned longer than ABANDONED_AFTER unrouted."""
    now = utcnow()
    for g in s.scalars(
        select(Group).where(Group.study_uid == study_uid, Group.state == REPROCESSING)
    ):
        if g.completed_at is not None and now - g.completed_at > ABANDONED_AFTER:
            g.state = UNROUTED
            g.route_note = "reprocess interrupted before it was routed"
            log.warning("study %s: group %s: %s", study_uid, g.id, g.route_note)
            continue
        raise ReprocessError(
            f"study {study_uid} is being reprocessed (group {g.id} is {REPROCESSING}); "
            "let that finish first"
        )


def _claim(s: Session, source: Group, instances: int, now: dt.datetime) -> Group:
    """The new group that repeats ``source``, in state ``reprocessing``."""
    group = Group(
        state=REPROCESSING,
        called_ae=source.called_ae,
        calling_ae=source.calling_ae,
        group_by=source.group_by,
        group_key=source.group_key,
        study_uid=source.study_uid,
        series_uid=source.series_uid,
        patient_id=source.patient_id,
        patient_name=source.patient_name,
        accession_number=source.accession_number,
        study_date=source.study_date,
        modalities=source.modalities,
        instance_count=instances,
        total_bytes=source.total_bytes,
        first_received=source.first_received,
        last_received=source.last_received,
        deadline=now,
        completed_at=now,
    )
    s.add(group)
    return group
