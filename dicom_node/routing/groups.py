"""The route stage: completed groups in, one queued job per matched rule out.

A group leaves ``complete`` for ``routed`` (jobs queued), ``discarded`` (a discard rule
matched) or ``unrouted`` (no rule matched); the reason is kept on the group. A group
left ``complete`` by a crash is picked up by :meth:`GroupRouter.sweep`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from dicom_node import metrics
from dicom_node.db import Database
from dicom_node.index.queries import completed_groups, instance_rows_of_group
from dicom_node.index.tables import COMPLETE, DISCARDED, ROUTED, UNROUTED, Group, Instance
from dicom_node.jobs.models import Priority
from dicom_node.jobs.queue import JobQueue, NewJob
from dicom_node.routing.engine import RoutingResult, evaluate
from dicom_node.routing.facts import GroupFacts, InstanceFacts
from dicom_node.settings.routes import RouteRule

log = logging.getLogger(__name__)


def instance_facts(row: Instance) -> InstanceFacts:
    """What routing sees of an indexed instance (no file read needed)."""
    return InstanceFacts(
        sop_instance_uid=row.sop_instance_uid,
        sop_class_uid=row.sop_class_uid,
        series_uid=row.series_uid,
        study_uid=row.study_uid,
        modality=row.modality or "",
        body_part=row.body_part or "",
        series_description=row.series_description or "",
        view_position=row.view_position or "",
        image_type=tuple(v for v in (row.image_type or "").split("\\") if v),
        rows=row.rows,
        columns=row.columns,
        path=None,
    )


class GroupRouter:
    """Routes completed groups. ``rules()`` is read per group, so a reload takes effect
    for the next group; ``on_queued()`` wakes the executor."""

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        rules: Callable[[], Sequence[RouteRule]],
        *,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.rules = rules
        self.on_queued = on_queued

    def route_completed(self, group_ids: Sequence[int]) -> None:
        """Route each group (callback of the assembler)."""
        for group_id in group_ids:
            try:
                self.route_group(group_id)
            except Exception as err:
                log.error(
                    "routing group %s failed (it stays complete and is offered again): %s: %s",
                    group_id,
                    type(err).__name__,
                    err,
                )
                log.debug("routing group %s failed", group_id, exc_info=True)

    def sweep(self) -> int:
        """Route every group still ``complete`` (e.g. after a crash); return how many."""
        with self.db.session() as s:
            ids = [g.id for g in completed_groups(s)]
        self.route_completed(ids)
        return len(ids)

    def route_group(self, group_id: int) -> RoutingResult | None:
        """Evaluate the rules for one complete group and queue its jobs."""
        with self.db.session() as s:
            group = s.get(Group, group_id)
            if group is None or group.state != COMPLETE:
                return None
            facts = group_facts(s, group)
            received_at, complete_at = group.first_received, group.completed_at
        return self.route_facts(group_id, facts, received_at, complete_at)

    def route_facts(
        self,
        group_id: int,
        facts: GroupFacts,
        received_at: dt.datetime | None,
        complete_at: dt.datetime | None,
        *,
        from_state: str = COMPLETE,
        note_prefix: str = "",
    ) -> RoutingResult:
        """Queue one job per decision of the rules on ``facts`` for group ``group_id``,
        then move the group from ``from_state`` to routed, unrouted or discarded."""
        result = evaluate(list(self.rules()), facts)
        queued = 0
        for d in result.decisions:
            if d.action == "discard":
                continue
            job_id = self.queue.enqueue(
                NewJob(
                    group_id=group_id,
                    rule_name=d.rule,
                    action=d.action,
                    study_uid=facts.key,
                    models=d.models,
                    destinations=d.destinations,
                    instance_uids=d.instance_uids,
                    priority=Priority.STAT if d.priority == "stat" else Priority.ROUTINE,
                    received_at=received_at,
                    complete_at=complete_at,
                )
            )
            queued += job_id is not None
        if not result.matched:
            state, note = UNROUTED, result.no_match_reason or "no rule matched"
        elif queued or any(d.action != "discard" for d in result.decisions):
            state = ROUTED
            note = "rules: " + ", ".join(f"{d.rule} ({d.action})" for d in result.decisions)
        else:
            state, note = DISCARDED, "discarded by rule " + result.decisions[0].rule
        note = note_prefix + note
        with self.db.session() as s:
            s.execute(
                update(Group)
                .where(Group.id == group_id, Group.state == from_state)
                .values(state=state, route_note=note[:2000])
            )
        metrics.GROUPS_ROUTED.labels(state).inc()
        log.info("group %s study %s %s: %s", group_id, facts.key, state, note)
        if queued:
            self.on_queued()
        return result


def group_facts(session: Session, group: Group) -> GroupFacts:
    """What routing sees of a stored group: its instances' index rows and its AEs."""
    rows = instance_rows_of_group(session, group.id)
    return GroupFacts(
        tuple(instance_facts(r) for r in rows),
        called_ae=group.called_ae,
        calling_ae=group.calling_ae,
        key=group.study_uid,
    )
