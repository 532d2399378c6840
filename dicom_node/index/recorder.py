"""Record a stored instance in the index and in its open group, in one transaction.

This is on the C-STORE path, so it uses one writer connection (serialised by ``lock``)
and remembers the open group of each (called AE, key): a stored instance costs one UPDATE
of its group and one INSERT, then a commit. Those statements and the duplicate check are
SQLAlchemy Core statements compiled once for the engine's dialect and run on the DBAPI
cursor (:mod:`dicom_node.index.compiled`); the rare ones go through SQLAlchemy as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dicom_node.db import Database
from dicom_node.index.compiled import CompiledStatement
from dicom_node.index.header import InstanceHeader
from dicom_node.index.tables import OPEN, Group, Instance
from dicom_node.settings.node import AETitleSettings

log = logging.getLogger(__name__)

_GROUPS = Group.__table__
# The group's list of its instances' modalities ("CT\\SR"): a modality that would make
# it longer than its column (PostgreSQL refuses that) is left out of it.
MODALITIES_MAX = _GROUPS.c.modalities.type.length
_INSTANCES = Instance.__table__
_INSERT_GROUP = insert(_GROUPS)
_INSTANCE_KEYS = [c.name for c in _INSTANCES.columns if c.name != "id"]
_PATH_OF_SOP = select(_INSTANCES.c.path).where(_INSTANCES.c.sop_instance_uid == bindparam("sop"))
_PATHS_OF_SOPS = select(_INSTANCES.c.sop_instance_uid, _INSTANCES.c.path).where(
    _INSTANCES.c.sop_instance_uid.in_(bindparam("sops", expanding=True))
)
_OPEN_GROUP = select(_GROUPS.c.id, _GROUPS.c.modalities).where(
    _GROUPS.c.called_ae == bindparam("ae"),
    _GROUPS.c.group_key == bindparam("key"),
    _GROUPS.c.state == OPEN,
)
_ADD_TO_GROUP = (
    update(_GROUPS)
    .where(_GROUPS.c.id == bindparam("gid"), _GROUPS.c.state == OPEN)
    .values(
        instance_count=_GROUPS.c.instance_count + 1,
        total_bytes=_GROUPS.c.total_bytes + bindparam("add_bytes"),
        last_received=bindparam("now"),
        deadline=bindparam("due"),
    )
)
_ADD_TO_GROUP_WITH_MODALITY = _ADD_TO_GROUP.values(modalities=bindparam("mods"))


class DuplicateInstance(Exception):
    """The instance was indexed meanwhile (by another process on the same database):
    nothing was recorded."""


@dataclass(frozen=True)
class Receipt:
    """How and where an instance arrived and was stored."""

    called_ae: str
    calling_ae: str
    peer_address: str | None
    transfer_syntax: str
    path: str
    size: int
    received_at: datetime


@dataclass(frozen=True)
class Recorded:
    """The outcome of :meth:`Recorder.record`."""

    instance_id: int
    group_id: int
    new_group: bool


class Recorder:
    """Writes instance rows and keeps groups up to date.

    All index writes of this process go through ``lock`` (SQLite has one writer anyway);
    across processes a partial unique index keeps one open group per (AE, key).
    """

    def __init__(
        self,
        db: Database,
        ae_settings: Callable[[str], AETitleSettings | None],
        lock: threading.Lock | None = None,
    ) -> None:
        self.db = db
        self.ae_settings = ae_settings
        self.lock = lock or threading.Lock()
        self._conn: Connection | None = None
        # (called AE, group key) -> (group id, modalities) of groups this process saw open
        self._open: dict[tuple[str, str], tuple[int, list[str]]] = {}
        # group id -> modalities left out of its list and logged (once per group and
        # modality while the group is cached; again after the cache was cleared)
        self._left_out: dict[int, set[str]] = {}
        dialect = db.engine.dialect
        self._path_of_sop = CompiledStatement(_PATH_OF_SOP, dialect)
        self._add_to_group = CompiledStatement(_ADD_TO_GROUP, dialect)
        self._add_to_group_with_modality = CompiledStatement(_ADD_TO_GROUP_WITH_MODALITY, dialect)
        returning = dialect.insert_returning  # else the DBAPI's lastrowid
        insert_instance = insert(_INSTANCES)
        self._insert_instance = CompiledStatement(
            insert_instance.returning(_INSTANCES.c.id) if returning else insert_instance,
            dialect,
            _INSTANCE_KEYS,
        )
        self._returning = returning
        # The compiled INSERT runs on the DBAPI cursor, so a unique violation is the
        # driver's IntegrityError (sqlite3's, psycopg's), not SQLAlchemy's.
        dbapi = getattr(dialect, "loaded_dbapi", None) or dialect.dbapi
        self._integrity_errors: tuple[type[Exception], ...] = (
            IntegrityError,
            *((dbapi.IntegrityError,) if dbapi is not None else ()),
        )

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.db.engine.connect()
        return self._conn

    def close(self) -> None:
        """Return the writer connection to the pool."""
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def existing_path(self, sop_instance_uid: str) -> str | None:
        """The stored path of ``sop_instance_uid`` if it is already indexed."""
        with self.lock:
            conn = self._connection()
            try:
                rows = self._path_of_sop.execute(conn, {"sop": sop_instance_uid}).fetchall()
                return rows[0][0] if rows else None
            finally:
                conn.rollback()

    def existing_paths(self, sop_instance_uids: list[str]) -> dict[str, str]:
        """:meth:`existing_path` of several instances in one query: those indexed."""
        if not sop_instance_uids:
            return {}
        with self.lock:
            conn = self._connection()
            try:
                return dict(conn.execute(_PATHS_OF_SOPS, {"sops": sop_instance_uids}).all())
            finally:
                conn.rollback()

    def record(
        self,
        header: InstanceHeader,
        receipt: Receipt,
        *,
        replace: bool = False,
        before_commit: Callable[[], None] | None = None,
    ) -> Recorded:
        """Insert the instance (replacing an existing row if ``replace``) and update its
        open group, opening one if none is open. ``before_commit`` runs last inside the
        transaction (the receive path waits there for its file to be durable); if it
        raises, nothing is recorded. Raises :class:`DuplicateInstance` if the SOP
        Instance UID is indexed already (and ``replace`` did not remove it first)."""
        with self.lock:
            conn = self._connection()
            try:
                with conn.begin():
                    if replace:
                        self._drop_existing(conn, header.sop_instance_uid)
                    recorded = self._row(conn, header, receipt)
                    if before_commit is not None:
                        before_commit()
            except BaseException:
                self._forget()
                raise
        return recorded

    def record_all(self, entries: list[tuple[InstanceHeader, Receipt]]) -> list[Recorded]:
        """:meth:`record` for new instances (none replacing a row), in one transaction:
        all are recorded, or none (:class:`DuplicateInstance` if one was indexed
        meanwhile; the caller may then record them one by one)."""
        if not entries:
            return []
        with self.lock:
            conn = self._connection()
            try:
                with conn.begin():
                    return [self._row(conn, header, receipt) for header, receipt in entries]
            except BaseException:
                self._forget()
                raise

    def _forget(self) -> None:
        """Drop the caches: they may describe rolled-back rows."""
        self._open.clear()
        self._left_out.clear()

    def _row(self, conn: Connection, header: InstanceHeader, receipt: Receipt) -> Recorded:
        """The instance's row and its group's update, in the caller's transaction."""
        ae = self.ae_settings(receipt.called_ae)
        group_by = ae.group_by if ae else "study"
        quiet = ae.quiet_seconds if ae else 5.0
        key = header.series_uid if group_by == "series" else header.study_uid
        now = receipt.received_at
        deadline = now + timedelta(seconds=quiet)
        group_id, new_group = self._touch_group(conn, header, receipt, group_by, key, now, deadline)
        values = dict(vars(header))  # flat dataclass: no deep copy needed
        values.update(
            transfer_syntax=receipt.transfer_syntax,
            calling_ae=receipt.calling_ae,
            called_ae=receipt.called_ae,
            peer_address=receipt.peer_address,
            received_at=now,
            path=receipt.path,
            size=receipt.size,
            group_id=group_id,
        )
        return Recorded(self._insert(conn, values), group_id, new_group)

    def _insert(self, conn: Connection, values: dict[str, Any]) -> int:
        try:
            cursor = self._insert_instance.execute(conn, values)
        except self._integrity_errors as err:  # the only unique key is the SOP UID
            raise DuplicateInstance(values["sop_instance_uid"]) from err
        return int(cursor.fetchone()[0] if self._returning else cursor.lastrowid)

    def _drop_existing(self, conn: Connection, sop_uid: str) -> None:
        old = conn.execute(
            select(_INSTANCES.c.id, _INSTANCES.c.group_id, _INSTANCES.c.size).where(
                _INSTANCES.c.sop_instance_uid == sop_uid
            )
        ).first()
        if old is not None:
            conn.execute(delete(_INSTANCES).where(_INSTANCES.c.id == old.id))
            conn.execute(
                update(_GROUPS)
                .where(_GROUPS.c.id == old.group_id, _GROUPS.c.state == OPEN)
                .values(
                    instance_count=_GROUPS.c.instance_count - 1,
                    total_bytes=_GROUPS.c.total_bytes - old.size,
                )
            )

    def _touch_group(
        self,
        conn: Connection,
        header: InstanceHeader,
        receipt: Receipt,
        group_by: str,
        key: str,
        now: datetime,
        deadline: datetime,
    ) -> tuple[int, bool]:
        """Add the instance to the open group of (called AE, key); open one if needed."""
        cache_key = (receipt.called_ae, key)
        cached = self._open.get(cache_key)
        if cached is None:
            row = conn.execute(_OPEN_GROUP, {"ae": receipt.called_ae, "key": key}).first()
            if row is not None:
                cached = (row.id, [m for m in row.modalities.split("\\") if m])
        if cached is not None:
            group_id, mods = cached
            params = {"gid": group_id, "add_bytes": receipt.size, "now": now, "due": deadline}
            statement = self._add_to_group
            if header.modality and header.modality not in mods:
                listed = "\\".join([*mods, header.modality])
                if len(listed) <= MODALITIES_MAX:
                    mods = [*mods, header.modality]
                    params["mods"] = listed
                    statement = self._add_to_group_with_modality
                elif header.modality not in self._left_out.setdefault(group_id, set()):
                    self._left_out[group_id].add(header.modality)
                    log.warning(
                        "instance %s: modality %s left out of the list of group %d of "
                        "study %s (over %d characters; not logged again for the group)",
                        header.sop_instance_uid,
                        header.modality,
                        group_id,
                        header.study_uid,
                        MODALITIES_MAX,
                    )
            hit = statement.execute(conn, params).rowcount
            if hit == 1:
                self._open[cache_key] = (group_id, mods)
                return group_id, False
            # The group completed since we cached it: open a new one.
        group_id = conn.execute(
            _INSERT_GROUP,
            dict(
                state=OPEN,
                called_ae=receipt.called_ae,
                calling_ae=receipt.calling_ae,
                group_by=group_by,
                group_key=key,
                study_uid=header.study_uid,
                series_uid=header.series_uid if group_by == "series" else None,
                patient_id=header.patient_id,
                patient_name=header.patient_name,
                accession_number=header.accession_number,
                study_date=header.study_date,
                modalities=header.modality or "",
                instance_count=1,
                total_bytes=receipt.size,
                first_received=now,
                last_received=now,
                deadline=deadline,
            ),
        ).inserted_primary_key[0]
        self._open[cache_key] = (group_id, [header.modality] if header.modality else [])
        if len(self._open) > 10_000:
            self._open.clear()
            self._left_out.clear()
        return group_id, True
