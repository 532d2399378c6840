"""Connections still waiting to send their A-ASSOCIATE-RQ, bounded apart from associations.

pynetdicom counts a connection against ``maximum_associations`` from the moment it is
accepted. So a few dozen TCP connections that send nothing held every association slot
until the ACSE timeout, and could do it again as soon as it fired: every sender locked
out for zero bytes. Instead:

- associations (connections whose A-ASSOCIATE-RQ arrived) are limited to
  ``max_associations`` by the node (:meth:`WaitingConnections.admit`), and to
  ``max_associations_per_peer`` from one IP address (so that one peer cannot take every
  slot), rejected-transient "local limit exceeded" as pynetdicom would;
- connections still waiting for theirs are at most ``max_waiting_connections``: a new
  connection beyond that drops the one that has waited longest, once it has waited
  :data:`GRACE` seconds. A real sender's request arrives well within that, even in a
  burst of connections on a busy node; an idle or trickling one holds no slot a sender
  needs. A burst of younger connections may exceed the limit up to :data:`BURST` times
  it, beyond which the oldest is dropped regardless;
- pynetdicom's own limit is the sum of both, and stays the backstop.

All through pynetdicom's public events: ``EVT_CONN_OPEN``, ``EVT_REQUESTED`` and
``EVT_CONN_CLOSE``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import weakref
from typing import Any

from dicom_node import metrics

log = logging.getLogger(__name__)

GRACE = 1.0  # s a waiting connection is kept over the limit (its request may be coming)
BURST = 4  # waiting connections never exceed this many times max_waiting_connections
QUIET_AFTER = 10.0  # s without a drop before the next drop logs a WARNING again


def _ended(ref: weakref.ref[Any]) -> bool:
    """Whether the association thread behind ``ref`` is gone or has ended (one not
    started yet has not)."""
    assoc = ref()
    return assoc is None or (assoc.ident is not None and not assoc.is_alive())


class WaitingConnections:
    """The connections of one server that have not sent an A-ASSOCIATE-RQ yet, oldest
    first, and the associations admitted past it. Keyed by pynetdicom's ``Association``
    of each connection, held weakly and dropped once its thread has ended: a connection
    close event does not come on every path (fuzzed streams), and an association held
    here would keep its buffers and contexts alive."""

    def __init__(self, max_waiting: int, max_associations: int, max_per_peer: int) -> None:
        self.max_waiting = max_waiting
        self.max_associations = max_associations
        self.max_per_peer = max_per_peer
        self._lock = threading.Lock()
        # id(assoc) -> (assoc, its socket, peer, opened at): insertion order, oldest first
        self._waiting: dict[int, tuple[weakref.ref[Any], socket.socket | None, str, float]] = {}
        # past their request: id(assoc) -> (assoc, the peer's IP address)
        self._admitted: dict[int, tuple[weakref.ref[Any], str]] = {}
        self._last_drop = 0.0

    def _prune(self) -> None:
        """Forget associations whose thread has ended (lock held)."""
        for key in [k for k, entry in self._waiting.items() if _ended(entry[0])]:
            del self._waiting[key]
        for key in [k for k, (ref, _) in self._admitted.items() if _ended(ref)]:
            del self._admitted[key]

    def waiting(self) -> int:
        with self._lock:
            self._prune()
            return len(self._waiting)

    def opened(self, assoc: Any) -> None:
        """``EVT_CONN_OPEN``: a new connection. Makes room for it by dropping the one that
        has waited longest if there are too many (a refused connection could not even be
        told why, and refusing the newest would let idle ones lock senders out)."""
        sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
        requestor = assoc.requestor
        peer = f"{requestor.address}:{requestor.port}"
        now = time.monotonic()
        dropped = []
        with self._lock:
            self._prune()
            while len(self._waiting) >= self.max_waiting:
                oldest = self._waiting[next(iter(self._waiting))]
                if now - oldest[3] < GRACE and len(self._waiting) < BURST * self.max_waiting:
                    break  # a burst: its requests are probably on their way
                dropped.append(self._waiting.pop(next(iter(self._waiting))))
            self._waiting[id(assoc)] = (weakref.ref(assoc), sock, peer, now)
            # one WARNING per episode of drops: a flood must not flood the log
            first = bool(dropped) and now - self._last_drop > QUIET_AFTER
            if dropped:
                self._last_drop = now
        for i, (_, old, old_peer, _) in enumerate(dropped):
            self._drop(old, old_peer, warn=first and i == 0)

    def _drop(self, sock: socket.socket | None, peer: str, warn: bool) -> None:
        """End a waiting connection: its reader sees the connection closed and the
        association thread ends at once (guard: a connection closed before associating)."""
        if sock is not None:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)
        metrics.CONNECTIONS_DROPPED.inc()
        if warn:
            log.warning(
                "%d connections waiting for their A-ASSOCIATE-RQ (max_waiting_connections): "
                "dropped the longest waiting, from %s; more drops are counted in "
                "dicom_node_connections_dropped_total",
                self.max_waiting,
                peer,
            )
        else:
            log.debug("dropped the waiting connection from %s", peer)

    def admit(self, assoc: Any) -> str | None:
        """``EVT_REQUESTED``: ``None`` if ``assoc`` may go on, else why not:
        ``"local_limit"`` (``max_associations`` admitted) or ``"peer_limit"``
        (``max_per_peer`` of them from its address). It waits no more either way."""
        address = assoc.requestor.address
        with self._lock:
            self._forget(assoc)
            self._prune()
            if sum(peer == address for _, peer in self._admitted.values()) >= self.max_per_peer:
                return "peer_limit"
            if len(self._admitted) >= self.max_associations:
                return "local_limit"
            self._admitted[id(assoc)] = (weakref.ref(assoc), address)
            return None

    def closed(self, assoc: Any) -> None:
        """``EVT_CONN_CLOSE``: the connection ended (any way); it waits and counts no more."""
        with self._lock:
            self._forget(assoc)

    def _forget(self, assoc: Any) -> None:
        """Remove ``assoc``'s entries (lock held); an entry under its id that belongs to
        an association since gone (ids are reused) is left to :meth:`_prune`."""
        key = id(assoc)
        entry = self._waiting.get(key)
        if entry is not None and entry[0]() is assoc:
            del self._waiting[key]
        admitted = self._admitted.get(key)
        if admitted is not None and admitted[0]() is assoc:
            del self._admitted[key]
