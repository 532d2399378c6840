"""The node: Storage SCP + instance store + index + study assembly, started together.

The job side (:mod:`dicom_node.jobs.service`) and the HTTP face attach to a :class:`Node`
through ``node.db``, ``node.assembler.on_complete`` and ``node.config``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ai.registry import ModelRegistry
from dicom_node.assembly import Assembler
from dicom_node.db import Database, sqlite_url
from dicom_node.index import tables  # noqa: F401  (registers the tables on Base)
from dicom_node.index.recorder import Recorder
from dicom_node.jobs import models as _job_tables  # noqa: F401  (registers the job tables)
from dicom_node.jobs.service import JobService
from dicom_node.network.scp import StorageSCP
from dicom_node.reload import ConfigSource
from dicom_node.schema import ensure_current
from dicom_node.settings.root import NodeConfig, keep_running
from dicom_node.store import owner, reconcile
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

DB_FILENAME = "index.sqlite"
PID_FILENAME = "dicom-node.pid"
# Settings the running listener, store and model sessions were built from.
_RESTART_KEYS = (
    "data_dir",
    "database_url",
    "bind_address",
    "port",
    "ae_titles",
    "max_associations",
    "max_associations_per_peer",
    "max_waiting_connections",
    "max_pdu_bytes",
    "disk_reserve_mb",
    "duplicate_policy",
    "models",
    "http",
    # Who runs jobs (and the broker the sweeper publishes to) is built at start.
    "jobs.executor",
    "jobs.broker_url",
    "jobs.workers",
)


def database_url(config: NodeConfig) -> str:
    """The configured database URL, or the SQLite file in the data directory."""
    return config.database_url or sqlite_url(Path(config.data_dir) / DB_FILENAME)


class Node:
    """Everything ``dicom-node serve`` runs, with ``start()`` and ``stop()``."""

    def __init__(self, config: NodeConfig, *, registry: ModelRegistry | None = None) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(database_url(config))
        ensure_current(self.db)  # empty: created at head; older schema: SchemaError
        self.write_lock = threading.Lock()
        self.store = InstanceStore(self.data_dir, reserve_bytes=config.disk_reserve_mb * 2**20)
        self.recorder = Recorder(self.db, config.source, self.write_lock)
        min_quiet = min(a.quiet_seconds for a in [*config.ae_titles, config.http.web_source])
        self.assembler = Assembler(
            self.db, config.source, self.write_lock, interval=max(0.05, min(1.0, min_quiet / 5))
        )
        self.scp = StorageSCP(config, self.store, self.recorder)
        self.jobs = JobService(lambda: self.config, self.db, self.store, self.assembler, registry)
        self._started = False
        self._owner: int | None = None  # holds the data directory while serving
        # What a reload reads again (``serve`` sets it: its file with its flags).
        self.config_source: ConfigSource | None = None

    def start(self) -> None:
        """Take the data directory (DataDirInUse if another node serves it), open the
        store, resume open groups, start assembly and listen for associations."""
        if self._owner is None:
            self._owner = owner.hold(self.data_dir)  # before the store is touched
        self.store.open()
        self._reconcile()
        self.jobs.start()
        self.assembler.start()
        self.scp.start()
        self._started = True
        log.info(
            "node listening on %s:%d as %s",
            self.config.bind_address,
            self.config.port,
            ", ".join(a.ae_title for a in self.config.ae_titles),
        )

    def _reconcile(self) -> None:
        """After an unclean stop, index the stored files the index lost (before the
        groups are resumed and the listeners accept)."""
        if not reconcile.start_unclean(self.store) or not reconcile.has_files(self.store):
            return
        log.info("the previous run did not stop cleanly: reconciling the store with the index")
        report = reconcile.reconcile(self.store, self.db, self.recorder)
        log.info("store reconciled: %s", report.summary())
        if report.count(reconcile.NO_ORIGIN):
            log.warning(
                "%d stored file(s) have no origin record and were left unindexed (a store "
                "written before origin records?); to index them as received on one of the "
                "node's AE titles, stop the node and run: dicom-node store reconcile "
                "--origin-ae AE_TITLE",
                report.count(reconcile.NO_ORIGIN),
            )

    def _index_durable(self) -> bool:
        """Make the index durable on disk (SQLite: checkpoint its WAL); False if not all
        of it could be (another process holds it)."""
        if self.db.engine.dialect.name != "sqlite":
            return True  # PostgreSQL and the like: every commit is durable
        try:
            with self.db.engine.connect() as conn:
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        except Exception as err:  # noqa: BLE001 - the next start reconciles instead
            log.warning("cannot checkpoint the index at stop: %s: %s", type(err).__name__, err)
            return False
        return busy is not None and busy[0] == 0

    def _mark_clean(self) -> None:
        """Mark the stop as clean; if the marker cannot be written (no space, no inode
        left), say so: the next start then reconciles, which is only slower."""
        try:
            reconcile.mark_clean(self.store)
        except OSError as err:
            log.warning("cannot mark the stop as clean (%s): the next start reconciles", err)

    def reload(self, new: NodeConfig) -> list[str]:
        """Apply a new configuration to new groups and jobs (routes, destinations, jobs,
        results). Returns the changed settings that only a restart applies. Validate it
        first as :func:`dicom_node.reload.reload` does: against the running models."""
        # What only a restart applies keeps its running value until then: the HTTP face
        # reads its settings live (a file without tokens would have opened a server bound
        # to every interface, because it had tokens, to anyone), and the next reload must
        # still see that the executor it runs is not the file's.
        new, restart = keep_running(new, self.config, _RESTART_KEYS)
        self.config = new
        log.info(
            "configuration reloaded: %d route(s), %d destination(s)%s",
            len(new.routes),
            len(new.destinations),
            f"; restart to apply: {', '.join(restart)}" if restart else "",
        )
        return restart

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, finish in-flight C-STOREs, stop assembly, close the index."""
        if self._started:
            self.scp.stop(grace)
            self.assembler.stop()
            self.jobs.stop(grace)
            self.recorder.close()
            self.store.close()
            self._started = False
            if self._index_durable():
                self._mark_clean()
            else:
                log.warning("index still in use at stop: the next start reconciles the store")
        if self._owner is not None:
            owner.let_go(self._owner)
            self._owner = None
        self.db.dispose()
        log.info("node stopped")
