"""Read-only queries on the index for the CLI and the job layer."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dicom_node.index.tables import COMPLETE, Group, Instance


def completed_groups(session: Session, limit: int | None = None) -> list[Group]:
    """Groups in state ``complete`` (not yet taken further), oldest completion first."""
    q = select(Group).where(Group.state == COMPLETE).order_by(Group.completed_at, Group.id)
    if limit is not None:
        q = q.limit(limit)
    return list(session.scalars(q))


def groups(state: str | None = None) -> Select[tuple[Group]]:
    """The query of groups, most recently active first, optionally only those in
    ``state`` (for a page of them: ``.limit()`` and ``.offset()``)."""
    q = select(Group).order_by(Group.last_received.desc(), Group.id.desc())
    return q if state is None else q.where(Group.state == state)


def list_groups(session: Session, state: str | None = None, limit: int = 100) -> list[Group]:
    """Most recently active groups first, optionally only those in ``state``."""
    return list(session.scalars(groups(state).limit(limit)))


def instance_rows_of_group(session: Session, group_id: int) -> list[Instance]:
    """Index rows of the group's instances (attributes for routing), same order."""
    return list(
        session.scalars(
            select(Instance)
            .where(Instance.group_id == group_id)
            .order_by(Instance.series_uid, Instance.instance_number, Instance.id)
        )
    )


def find_instance(session: Session, sop_instance_uid: str) -> Instance | None:
    """The index row of one instance, if stored."""
    return session.scalar(select(Instance).where(Instance.sop_instance_uid == sop_instance_uid))
