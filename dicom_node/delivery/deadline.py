"""One deadline over a whole HTTP exchange: connect, send, the answer's head and body.

requests' ``timeout`` bounds each socket operation, not the exchange: a peer that sends
its status line and headers a byte at a time, each well within the timeout, held a
delivery worker for as long as it liked (one 60-byte head at a byte per 0.25 s held it
15 s against a 1 s timeout, and then counted as delivered). Here a watchdog thread shuts
the exchange's socket down at the deadline; the read or write blocked in it ends at once
with a connection error, which :func:`dicom_node.delivery.http.post` reports as a
timeout.

The sockets are found through the connections requests uses: :func:`mount` gives a
session pools whose connection class (urllib3's public ``ConnectionCls``) registers
itself with the calling thread's :class:`Deadline` in ``connect``, ``request`` and
``getresponse``. A SOCKS proxy keeps urllib3's own classes (only per-operation timeouts).

Before a connection is opened its host name is resolved within the time left
(:mod:`dicom_node.delivery.resolve`): a resolver that never answers has no socket to
shut, and held the worker past the deadline. urllib3 then looks the name up again itself,
which the resolver has just answered.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import NameResolutionError

from dicom_node.delivery import resolve

__all__ = ["Deadline", "mount"]

_local = threading.local()
_POLL_S = 0.05  # after the deadline: how soon a socket created later is shut too


class Deadline:
    """``with Deadline(timeout) as d:`` one exchange in this thread; ``d.expired`` after.

    ``phase`` says where the exchange was: ``send`` (connecting, sending), ``head``
    (waiting for the status line and headers), ``body`` (set by the caller).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.phase = "send"
        self.expired = False
        self.unresolved: resolve.Unresolved | None = None  # a host name not resolved
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._conns: list[HTTPConnection] = []
        self._shut: list[socket.socket] = []  # held, so that no id is reused meanwhile
        self._thread = threading.Thread(target=self._watch, name="http-deadline", daemon=True)

    def __enter__(self) -> Deadline:
        self._started = time.monotonic()
        self._thread.start()
        _local.deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:  # after this, no socket is shut (it may go back to the pool)
            self._done.set()
        _local.deadline = None

    def add(self, conn: HTTPConnection) -> None:
        """Watch ``conn``: at the deadline, its socket then (whatever it is) is shut."""
        with self._lock:
            if conn not in self._conns:
                self._conns.append(conn)

    def resolve(self, conn: HTTPConnection) -> None:
        """Resolve ``conn``'s host name within the time left, or raise urllib3's
        NameResolutionError (a connection that could not be made: nothing was sent)."""
        left = max(0.0, self.timeout - (time.monotonic() - self._started))
        try:
            resolve.addresses(conn.host, conn.port or 0, left, limit=self.timeout)
        except resolve.Unresolved as exc:
            self.unresolved = exc
            raise NameResolutionError(conn.host, conn, socket.gaierror(str(exc))) from exc

    def _watch(self) -> None:
        if self._done.wait(self.timeout):
            return
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                self.expired = True
                for conn in self._conns:
                    sock = conn.sock
                    if sock is not None and all(sock is not s for s in self._shut):
                        self._shut.append(sock)
                        _shut_down(sock)
            if self._done.wait(_POLL_S):
                return


def _shut_down(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown drops its
    # TLS state, which the thread blocked in a read is still using.
    with contextlib.suppress(OSError):  # already closed or never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _current(phase: str | None = None) -> Deadline | None:
    deadline: Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None and phase is not None:
        deadline.phase = phase
    return deadline


class _Watched:
    """Mixin for urllib3's connection classes: registers with the thread's deadline."""

    def connect(self) -> None:
        if (d := _current()) is not None:
            d.add(self)  # type: ignore[arg-type]
            d.resolve(self)  # type: ignore[arg-type]
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        if (d := _current("send")) is not None:
            d.add(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _current("head")
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter with pools of watched connections (proxied ones too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def mount(session: requests.Session) -> None:
    """Make ``session``'s HTTP(S) exchanges obey a :class:`Deadline` in their thread."""
    session.mount("http://", _Adapter())
    session.mount("https://", _Adapter())
