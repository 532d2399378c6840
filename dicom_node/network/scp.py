"""The Storage SCP: C-ECHO and C-STORE on one or more called AE titles.

A pynetdicom AE on one port: its settings, association control (the node's limits, the
called and calling AE checks, rejected presentation contexts logged), per-association
counts and its start and stop. Each C-STORE is answered by
:func:`dicom_node.network.c_store.store_instance`.
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom import __version__ as pynetdicom_version
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from dicom_node import memory, metrics
from dicom_node.index.recorder import Recorder
from dicom_node.network import (
    admission,
    c_store,
    guard,
    inline,
    loop_delay,
    spool,
    tweaks,
    uid_validation,
    waiting,
)
from dicom_node.settings.root import NodeConfig
from dicom_node.store.intake import Intake
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

_CONTEXT_RESULTS = {
    0x01: "user_rejection",
    0x02: "no_reason",
    0x03: "abstract_syntax_not_supported",
    0x04: "transfer_syntaxes_not_supported",
}


def _log_rejected_contexts(contexts: list[Any], peer: str, called: str) -> None:
    """One warning naming every SOP class the peer proposed and cannot send here."""
    names = []
    for cx in contexts:
        reason = _CONTEXT_RESULTS.get(cx.result, f"result_{cx.result}")
        metrics.CONTEXTS_REJECTED.labels(reason).inc()
        uid = UID(cx.abstract_syntax)
        label = uid.name if uid.name != str(uid) else "unknown SOP class"
        names.append(f"{label} {uid} ({reason.replace('_', ' ')})")
    log.warning(
        "association from %s to %s: rejected %d presentation context(s): %s. The "
        "node stores the Storage SOP classes of the DICOM standard (pynetdicom's "
        "list) in any transfer syntax; instances of these classes cannot be sent "
        "to it",
        peer,
        called,
        len(names),
        "; ".join(names),
    )


class _Server(ThreadedAssociationServer):
    """pynetdicom's threaded association server, made with ``AE.make_server`` rather than
    started by ``AE.start_server``: the node runs its accept loop on its own thread."""

    def shutdown(self) -> None:
        """End the accept loop, then close the socket. pynetdicom's own ``shutdown`` also
        takes the server out of the AE's list of the servers ``start_server`` started,
        where this one never was."""
        socketserver.BaseServer.shutdown(self)
        self.server_close()


class StorageSCP:
    """A pynetdicom AE serving the node's called AE titles on one port."""

    def __init__(self, config: NodeConfig, store: InstanceStore, recorder: Recorder) -> None:
        self.config = config
        self.store = store
        self.recorder = recorder
        # pynetdicom's "standard" log handlers run on every PDU and DIMSE message (taking
        # the association lock, formatting summaries) and emit only INFO/DEBUG lines; when
        # pynetdicom logs at WARNING or above (the default) they are pure overhead.
        if logging.getLevelName(config.logging.pynetdicom_level) >= logging.WARNING:
            _config.LOG_HANDLER_LEVEL = "none"
        # ~700 validations of the same few hundred UIDs per association: each string's
        # result remembered (pynetdicom's documented VALIDATORS option; same results)
        uid_validation.install()
        if not guard.install():  # tests/network/test_guards_installed.py fails on this
            log.error("pynetdicom %s: hostile-input guards NOT installed", pynetdicom_version)
        self.tweaks = tweaks.install(tweaks.enabled())
        self.ae = AE(ae_title=config.ae_titles[0].ae_title)
        spool.register(self.ae, store.incoming, admit=store.space.admit)
        # pynetdicom counts every connection whose thread is alive (waiting, or dropped and
        # not ended yet): its limit is only a backstop above the node's own (waiting.py).
        self.ae.maximum_associations = (
            config.max_associations + 2 * waiting.BURST * config.max_waiting_connections
        )
        self.connections = waiting.WaitingConnections(
            config.max_waiting_connections,
            config.max_associations,
            config.associations_per_peer(),
        )
        self.admission = admission.Admission(config, self.connections)
        self.ae.maximum_pdu_size = config.max_pdu_bytes
        self.ae.network_timeout = config.network_timeout
        self.ae.acse_timeout = config.acse_timeout
        self.ae.dimse_timeout = config.dimse_timeout
        self.ae.require_called_aet = False  # checked per configured AE in _on_requested
        for cx in AllStoragePresentationContexts:
            self.ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        self._server: Any = None
        self._acceptor: threading.Thread | None = None  # runs the server's accept loop
        self._stats: dict[int, list[int]] = {}
        self._stats_lock = threading.Lock()
        self.intake = Intake(store, recorder, config.duplicate_policy)
        metrics.ASSOCIATIONS_ACTIVE.set_function(lambda: len(self.ae.active_associations))
        metrics.CONNECTIONS_WAITING.set_function(self.connections.waiting)

    # -- association control -------------------------------------------------------
    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        if not self.admission.accept(assoc):
            return  # rejected (admission.py)
        if "loop_delay" in self.tweaks:
            loop_delay.apply(assoc)  # DUL loop pause paced by the traffic
        if "inline" in self.tweaks:
            inline.serve_inline(assoc)  # C-STOREs served on the DUL thread

    def _on_established(self, event: evt.Event) -> None:
        with self._stats_lock:
            self._stats[id(event.assoc)] = [0, 0]
        r = event.assoc.requestor
        called = str(r.primitive.called_ae_title).strip()
        log.info("association from %s@%s:%s to %s", r.ae_title, r.address, r.port, called)
        rejected = event.assoc.rejected_contexts
        if rejected:
            _log_rejected_contexts(rejected, f"{r.ae_title}@{r.address}", called)

    def _on_closed(self, event: evt.Event) -> None:
        memory.release_free_memory_soon()
        self._end_of_association(event.assoc)
        with self._stats_lock:
            stats = self._stats.pop(id(event.assoc), None)
        if stats is not None:
            log.info(
                "association from %s closed: %d stored, %d failed",
                event.assoc.requestor.ae_title,
                stats[0],
                stats[1],
            )

    def _on_conn_open(self, event: evt.Event) -> None:
        self.connections.opened(event.assoc)  # may drop the connection waiting longest

    def _on_conn_close(self, event: evt.Event) -> None:
        # Whatever ended the connection (release, abort, timeout, a refused peer), its
        # unserved datasets go, and its buffers are handed back to the OS after a burst.
        self.connections.closed(event.assoc)
        self._end_of_association(event.assoc)
        memory.release_free_memory_soon()

    def _end_of_association(self, assoc: Any) -> None:
        """Discard what ``assoc`` received and no handler took (a dataset cut short, a
        request pynetdicom dropped or never served); release, abort and connection
        close all call this, whichever comes first does the work."""
        discarded = spool.end_of_association(assoc)
        if discarded:
            metrics.SPOOL_FILES_DISCARDED.inc(len(discarded))
            log.warning(
                "association from %s ended in the middle of a C-STORE (or before serving "
                "it): %d received dataset(s) discarded",
                getattr(assoc.requestor, "ae_title", "?"),
                len(discarded),
            )

    def _count(self, event: evt.Event, ok: bool) -> None:
        stats = self._stats.get(id(event.assoc))
        if stats is not None:
            stats[0 if ok else 1] += 1

    # -- services ------------------------------------------------------------------
    def _on_echo(self, event: evt.Event) -> int:
        return c_store.SUCCESS

    def _on_store(self, event: evt.Event) -> int | Dataset:
        t0 = time.perf_counter()
        try:
            result = c_store.store_instance(event, self.store, self.intake)
        except Exception as err:  # never let an unexpected error answer Success
            log.exception("C-STORE failed unexpectedly")
            result = c_store.status(
                c_store.OUT_OF_RESOURCES, f"internal error: {type(err).__name__}", "internal"
            )
        metrics.STORE_SECONDS.observe(time.perf_counter() - t0)
        self._count(event, isinstance(result, int) and result == c_store.SUCCESS)
        return result

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Listen on the configured address and port (returns at once)."""
        handlers = [
            (evt.EVT_CONN_OPEN, self._on_conn_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_CONN_CLOSE, self._on_conn_close),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]
        # make_server() binds here (a port in use fails the start) and the node runs the
        # accept loop on a thread it holds, whose liveness listening() reports.
        self._server = self.ae.make_server(
            (self.config.bind_address, self.config.port),
            evt_handlers=handlers,
            server_class=_Server,
        )
        self._acceptor = threading.Thread(
            target=self._server.serve_forever, name="dimse-accept", daemon=True
        )
        self._acceptor.start()
        # socketserver listens with a backlog of 5 (pynetdicom documents the attribute):
        # a burst of connections then waits for the kernel's SYN-ACK retries, up to a
        # minute, and senders time out. Every connection beyond max_associations must
        # still be accepted to be answered with an A-ASSOCIATE-RJ.
        self._server.request_queue_size = max(128, 2 * self.ae.maximum_associations)
        self._server.socket.listen(self._server.request_queue_size)

    def listening(self) -> bool:
        """Whether the listening socket is open and the thread of its accept loop alive
        (the loop can end with the socket left open)."""
        server, acceptor = self._server, self._acceptor
        if server is None or server.socket.fileno() < 0:
            return False
        return acceptor is not None and acceptor.is_alive()

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting associations, let active ones finish (up to ``grace`` s), close."""
        if self._server is None:
            return
        self._server.shutdown()  # stops accepting; active associations keep running
        deadline = time.monotonic() + grace

        def busy() -> list[Any]:
            # Connections that never sent an A-ASSOCIATE-RQ (port probes) hold no work.
            return [a for a in self.ae.active_associations if a.is_established]

        while busy() and time.monotonic() < deadline:
            time.sleep(0.05)
        if busy():
            log.warning("aborting %d association(s) still active after %.0f s", len(busy()), grace)
        self.ae.shutdown()  # aborts what is still active
        spool.unregister(self.ae)
        self._server = self._acceptor = None
