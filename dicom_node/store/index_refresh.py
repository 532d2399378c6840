"""Refresh the index values of stored instances from their files (``dicom-node index
refresh``).

A row keeps the values the version that received its instance computed: rows indexed
before a fix of :mod:`.header_values` (ACR-NEMA dates cut to ``yyyy.mm.``, ``hh:mm:ss``
times, IDs clipped to their column, several values as Python's list text) or before a
migration that added columns (series dates, 0005) stay as they were. This reads each
stored instance's header again with the receive path's own code (File Meta, then
:func:`~dicom_node.index.header.parse_file_header`: the top-level elements up to
(0040,0245), never Pixel Data) and updates the row's derived values that differ, so a
row holds what a receive indexes now. Groups keep copies of their instances' values
(patient, accession, study date, the modalities list): a group of the study holding the
value a row had gets the row's new one.

While a node runs, on SQLite and PostgreSQL:

- rows are read in batches of ``batch`` by id, up to the newest id when the run starts
  (later rows are indexed by the running code); the files are read outside any
  transaction, and each batch's updates (rows and groups) commit in one short
  transaction, so a run stopped midway leaves every batch either done or not; a rerun
  finds what is left, and changes nothing where nothing differs. A batch the database
  aborts (a deadlock with retention on PostgreSQL, SQLite's busy timeout) is written
  again, up to :data:`TRIES` times; any other database error stops the run at once;
- a row whose group is open (being received) is left alone, counted ``left``: its
  receiver keeps the group's modalities list in memory. Run again once it completed;
- an update names the row's id and path: a row that retention deleted or a duplicate
  replaced meanwhile is not touched (``gone``). A file found missing is looked at again
  while its series is held as a receiver holds it, so retention is not between deleting
  the file and the row: missing is reported only if the row is still there;
- a row naming a file outside this node's store is not checked (``elsewhere``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydicom.filereader import read_file_meta_info
from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import OperationalError

from dicom_node.db import Database
from dicom_node.index.header import HeaderError, InstanceHeader, parse_file_header
from dicom_node.index.recorder import MODALITIES_MAX
from dicom_node.index.tables import OPEN, Group, Instance
from dicom_node.store.series_lock import reading
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

BATCH = 500  # rows read, and updated in one transaction
TRIES = 3  # transactions of a batch the database aborted before the run gives up

_INSTANCES = Instance.__table__
_GROUPS = Group.__table__
_IDENTITY = ("sop_instance_uid", "study_uid", "series_uid")
# The row's values computed from the header: all but the identifying UIDs.
REFRESHED = tuple(f.name for f in fields(InstanceHeader) if f.name not in {*_IDENTITY, "bounded"})
# The values a group copies from its first instance (the recorder's new group).
GROUP_COPIES = ("patient_id", "patient_name", "accession_number", "study_date")

UPDATED = "updated"
UNCHANGED = "unchanged"
MISSING = "missing"
UNREADABLE = "unreadable"
MISMATCHED = "mismatched"  # the file's UIDs are not the row's
LEFT = "left"  # its group is being received
GONE = "gone"  # deleted or replaced meanwhile
ELSEWHERE = "elsewhere"  # a file outside this node's store
PROBLEMS = (MISSING, UNREADABLE, MISMATCHED)


@dataclass(frozen=True)
class Problem:
    """A row whose file could not give its values."""

    outcome: str  # MISSING | UNREADABLE | MISMATCHED
    path: str
    sop_instance_uid: str
    study_uid: str
    reason: str = ""


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    columns: Counter[str] = field(default_factory=Counter)  # rows changed per column
    groups: set[int] = field(default_factory=set)  # groups updated
    seconds: float = 0.0

    @property
    def checked(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.checked} row(s) checked, {c[UPDATED]} updated, {c[UNCHANGED]} unchanged, "
            f"{c[MISSING]} missing, {c[UNREADABLE]} unreadable, {c[MISMATCHED]} mismatched, "
            f"{c[LEFT]} left (group being received), {c[GONE]} gone meanwhile, "
            f"{c[ELSEWHERE]} elsewhere, {len(self.groups)} group(s) updated, "
            f"{self.seconds:.1f} s"
        )


def read_header(path: Path) -> InstanceHeader:
    """The header of the stored file at ``path`` as a receive reads it, never its Pixel
    Data. Raises FileNotFoundError if it is gone, HeaderError or OSError if it cannot be
    read."""
    try:
        ts = str(read_file_meta_info(path).TransferSyntaxUID)
    except FileNotFoundError:
        raise
    except Exception as err:  # pydicom raises many kinds on garbage
        raise HeaderError(f"no readable File Meta: {type(err).__name__}: {err}") from err
    return parse_file_header(path, ts)


def _rows(conn: Connection, after: int, upto: int, study: str | None, batch: int) -> list[Row]:
    cols = [_INSTANCES.c[n] for n in ("id", "path", "group_id", *_IDENTITY, *REFRESHED)]
    stmt = (
        select(*cols, _GROUPS.c.state)
        .join(_GROUPS, _GROUPS.c.id == _INSTANCES.c.group_id)
        .where(_INSTANCES.c.id > after, _INSTANCES.c.id <= upto)
        .order_by(_INSTANCES.c.id)
        .limit(batch)
    )
    if study is not None:
        stmt = stmt.where(_INSTANCES.c.study_uid == study)
    return list(conn.execute(stmt).all())


@dataclass
class _Checked:
    row: Row
    outcome: str
    changes: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def _check(store: InstanceStore, row: Row) -> _Checked:
    """What the file of ``row`` says its values are, against the row's."""
    if row.state == OPEN:
        return _Checked(row, LEFT)
    path = Path(row.path)
    if path.parent.parent.parent != store.instances:
        return _Checked(row, ELSEWHERE)
    try:
        header = read_header(path)
    except FileNotFoundError:
        return _Checked(row, MISSING, reason="no such file")
    except (HeaderError, OSError) as err:
        return _Checked(row, UNREADABLE, reason=str(err))
    found = tuple(getattr(header, n) for n in _IDENTITY)
    if found != tuple(getattr(row, n) for n in _IDENTITY):
        reason = "its SOP Instance, Study, Series UIDs are {}, {}, {}".format(*found)
        return _Checked(row, MISMATCHED, reason=reason)
    changes = {n: getattr(header, n) for n in REFRESHED if getattr(header, n) != getattr(row, n)}
    return _Checked(row, UPDATED if changes else UNCHANGED, changes)


def _still_indexed(db: Database, row: Row) -> bool:
    """Whether ``row`` is still indexed, asked while its series is held as a receiver
    holds it (retention deletes a series' files and then its rows holding it alone)."""
    with reading(Path(row.path).parent), db.engine.connect() as conn:
        stmt = select(_INSTANCES.c.id).where(
            _INSTANCES.c.id == row.id, _INSTANCES.c.path == row.path
        )
        return conn.execute(stmt).first() is not None


@dataclass
class _GroupChanges:
    """What the updated rows' groups copied from them (the recorder's new group, its
    modalities list), to be given the rows' new values."""

    copies: dict[tuple, Any] = field(default_factory=dict)  # (study, column, old) -> new
    mods: dict[str, dict[str, str]] = field(default_factory=dict)  # study -> old -> new|""
    added: dict[int, list[str]] = field(default_factory=dict)  # group -> modalities it lacks

    @classmethod
    def of(cls, done: list[_Checked]) -> _GroupChanges:
        """A value that two rows change differently is left as it is."""
        out = cls()
        conflicting: set[tuple] = set()
        for c in done:
            for name in GROUP_COPIES:
                if name in c.changes:
                    key = (c.row.study_uid, name, getattr(c.row, name))
                    if out.copies.setdefault(key, c.changes[name]) != c.changes[name]:
                        conflicting.add(key)
            if "modality" in c.changes:
                new = c.changes["modality"]
                if c.row.modality:
                    mapping = out.mods.setdefault(c.row.study_uid, {})
                    mapping.setdefault(c.row.modality, new or "")
                if new:  # the row's own group lists it, as the recorder would have
                    out.added.setdefault(c.row.group_id, []).append(new)
        for key in conflicting:
            del out.copies[key]
        return out

    def listed(self, study: str, gid: int, old: str) -> str:
        """The modalities list ``old`` of group ``gid`` with each modality mapped, once
        each, bounded as the recorder bounds it (one that would make it too long is
        left out)."""
        mapping = self.mods.get(study, {})
        kept: list[str] = []
        for m in [*(mapping.get(m, m) for m in old.split("\\")), *self.added.get(gid, ())]:
            if m and m not in kept and len("\\".join([*kept, m])) <= MODALITIES_MAX:
                kept.append(m)
        return "\\".join(kept)


def _update_groups(conn: Connection, done: list[_Checked]) -> set[int]:
    """Give the groups (not open) of the updated rows' studies the rows' new values
    where they hold the old ones; the ids of the groups changed."""
    changes = _GroupChanges.of(done)
    changed: set[int] = set()
    not_open = _GROUPS.c.state != OPEN
    for (study, name, old), new in changes.copies.items():
        col = _GROUPS.c[name]
        match = (_GROUPS.c.study_uid == study, not_open, col.is_not_distinct_from(old))
        ids = list(conn.scalars(select(_GROUPS.c.id).where(*match)))
        if ids:
            conn.execute(update(_GROUPS).where(_GROUPS.c.id.in_(ids), *match).values({name: new}))
            changed.update(ids)
    if not changes.mods and not changes.added:
        return changed
    listed = select(_GROUPS.c.id, _GROUPS.c.study_uid, _GROUPS.c.modalities).where(
        not_open,
        or_(_GROUPS.c.study_uid.in_(list(changes.mods)), _GROUPS.c.id.in_(list(changes.added))),
    )
    for gid, study, old in conn.execute(listed).all():
        new = changes.listed(study, gid, old)
        if new != old:
            conn.execute(
                update(_GROUPS)
                .where(_GROUPS.c.id == gid, _GROUPS.c.modalities == old)
                .values(modalities=new)
            )
            changed.add(gid)
    return changed


def _apply_once(db: Database, pending: list[_Checked]) -> tuple[list[_Checked], set[int]]:
    """Update the rows of ``pending`` and their groups in one transaction; the rows
    updated (the others were deleted or replaced meanwhile) and the groups changed."""
    done: list[_Checked] = []
    with db.engine.begin() as conn:
        for c in pending:
            stmt = (
                update(_INSTANCES)
                .where(_INSTANCES.c.id == c.row.id, _INSTANCES.c.path == c.row.path)
                .values(c.changes)
            )
            if conn.execute(stmt).rowcount == 1:
                done.append(c)
        groups = _update_groups(conn, done)
    return done, groups


class Aborted(Exception):
    """The database aborted a batch's transaction :data:`TRIES` times in a row (the
    last :class:`OperationalError` is its ``__cause__``)."""


def aborted(err: OperationalError) -> bool:
    """Whether the database aborted the transaction for another one in its way, so that
    it may pass when tried again: PostgreSQL's SQLSTATE class 40 (deadlock, serialization
    failure) or lock_not_available, SQLite's busy or locked. Not a fault that fails
    every time (a read-only database, a full disk, a lost server)."""
    sqlstate = getattr(err.orig, "sqlstate", None)  # psycopg
    if sqlstate:
        return sqlstate.startswith("40") or sqlstate == "55P03"
    code = getattr(err.orig, "sqlite_errorcode", None)  # sqlite3; low byte: primary code
    return code is not None and (code & 0xFF) in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED


def _apply(db: Database, pending: list[_Checked], report: Report) -> None:
    """:func:`_apply_once`, again after a transaction the database aborted (a deadlock
    with retention deleting rows of the batch on PostgreSQL, SQLite's busy timeout):
    nothing of it was written, and the updates name rows as they were read. Raises
    :class:`Aborted` after :data:`TRIES`; another OperationalError at once."""
    for attempt in range(TRIES):
        try:
            done, groups = _apply_once(db, pending)
            break
        except OperationalError as err:
            if not aborted(err):
                raise
            if attempt + 1 == TRIES:
                raise Aborted() from err
            log.info("index refresh: batch rolled back (%s): trying again", err.orig)
    report.groups |= groups
    updated = {id(c) for c in done}
    for c in pending:
        if id(c) not in updated:
            c.outcome = GONE


def _bounds(db: Database, study: str | None) -> tuple[int, int]:
    """The newest row id now, and how many rows there are up to it."""
    with db.engine.connect() as conn:
        where = [] if study is None else [_INSTANCES.c.study_uid == study]
        upto = conn.scalar(select(func.max(_INSTANCES.c.id)).where(*where)) or 0
        total = conn.scalar(select(func.count()).select_from(_INSTANCES).where(*where))
    return upto, total or 0


def refresh(
    db: Database,
    store: InstanceStore,
    *,
    study: str | None = None,
    batch: int = BATCH,
    dry_run: bool = False,
    total: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Update the derived values of the rows of ``store``'s instances (of ``study``
    only, if given) that differ from what their files say now (on a dry run: count
    them, change nothing). ``total`` is told how many rows there are, ``progress`` of
    each batch done. Raises :class:`Aborted` (a batch aborted :data:`TRIES` times) or
    another OperationalError; the batches before it are done."""
    started = time.monotonic()
    report = Report()
    upto, count = _bounds(db, study)
    if total is not None:
        total(count)
    last = 0
    while True:
        with db.engine.connect() as conn:
            rows = _rows(conn, last, upto, study, batch)
        if not rows:
            break
        last = rows[-1].id
        checked = [_check(store, row) for row in rows]
        for c in checked:
            if c.outcome == MISSING and not _still_indexed(db, c.row):
                c.outcome = GONE
        pending = [c for c in checked if c.outcome == UPDATED]
        if pending and not dry_run:
            _apply(db, pending, report)
        for c in checked:
            report.counts[c.outcome] += 1
            if c.outcome == UPDATED:
                report.columns.update(c.changes.keys())
            elif c.outcome in PROBLEMS:
                r = c.row
                report.problems.append(
                    Problem(c.outcome, r.path, r.sop_instance_uid, r.study_uid, c.reason)
                )
        if progress is not None:
            progress(len(rows))
    report.seconds = time.monotonic() - started
    return report
