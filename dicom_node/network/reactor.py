"""Lower the per-message latency of pynetdicom's association reactor (guarded tweak).

pynetdicom 3.0.x (checked against 3.0.4) runs each acceptor association in
``Association._run_reactor``, a loop that starts every pass with a hard-coded
``time.sleep(0.001)`` and then polls the DIMSE message queue without blocking. Every
C-STORE request therefore waits up to ~1.1 ms (Linux sleep granularity) after it has been
fully reassembled before our handler sees it; at a few hundred instances a second that is
a large share of the time per instance.

:func:`install` replaces the ``time`` name inside ``pynetdicom.association`` by a proxy
whose ``sleep`` behaves exactly like :func:`time.sleep`, except for the reactor's 1 ms
pause on an association thread: there it waits *at most* the same 1 ms on the DIMSE
message queue's own condition variable, returning as soon as a message is queued. The
loop's other checks (release, abort, DUL alive, idle timeout) keep running at least as
often as before.

It also replaces ``AssociationSocket.recv``, which reads a PDU in 4096-byte ``socket.recv``
calls appended to a bytearray (~130 calls per 512x512 CT slice), by one that reads into a
preallocated buffer with ``recv_into`` for whatever the kernel has; same contract (returns
the bytes read, fewer only if the peer closed; socket errors propagate unchanged).

If pynetdicom's internals do not look as expected (another version), the affected part is
not patched and the stock behaviour remains.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import threading
import time as _time
import weakref
from typing import Any

log = logging.getLogger(__name__)

_REACTOR_PAUSE = 0.001  # the literal in Association._run_reactor (pynetdicom 3.0.x)
_installed = False


class _WakingTime:
    """Stands in for the ``time`` module inside ``pynetdicom.association``."""

    def __init__(self, association_cls: type) -> None:
        self._association_cls = association_cls

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)

    def sleep(self, seconds: float) -> None:
        if seconds == _REACTOR_PAUSE:
            thread = threading.current_thread()
            if isinstance(thread, self._association_cls):
                q = getattr(getattr(thread, "dimse", None), "msg_queue", None)
                if isinstance(q, queue.Queue):
                    with q.not_empty:
                        if not q._qsize():
                            q.not_empty.wait(seconds)
                    return
        _time.sleep(seconds)


class _DulTime:
    """Stands in for the ``time`` module inside ``pynetdicom.dul``.

    The DUL reactor sleeps ``_run_loop_delay`` whenever a pass found nothing to do, so
    each incoming PDU and each outgoing response waits for the end of that sleep. On a
    DUL thread this ``sleep`` instead waits at most as long in ``select`` on the
    association's socket and a wake-up socket that :func:`_send_pdu` pokes when a
    primitive is queued for sending: it returns as soon as there is work.
    """

    def __init__(self, dul_cls: type) -> None:
        self._dul_cls = dul_cls

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)

    def sleep(self, seconds: float) -> None:
        dul = threading.current_thread()
        sock = getattr(getattr(dul, "socket", None), "socket", None)
        if not isinstance(dul, self._dul_cls) or sock is None or seconds <= 0:
            _time.sleep(seconds)
            return
        wake = _wake_pair(dul)
        try:
            ready, _, _ = select.select([sock, wake[0]], [], [], seconds)
        except (OSError, ValueError):  # socket closed meanwhile: the reactor will notice
            _time.sleep(seconds)
            return
        if wake[0] in ready:
            with contextlib.suppress(OSError):
                wake[0].recv(4096)


def _wake_pair(dul: Any) -> tuple[socket.socket, socket.socket]:
    pair = dul.__dict__.get("_dicom_node_wake")
    if pair is None:
        pair = socket.socketpair()
        for s in pair:
            s.setblocking(False)
        dul._dicom_node_wake = pair
        weakref.finalize(dul, _close_pair, pair)
    return pair


def _close_pair(pair: tuple[socket.socket, socket.socket]) -> None:
    for s in pair:
        s.close()


def _wrap_send_pdu(original: Any) -> Any:
    def send_pdu(self: Any, primitive: Any) -> None:
        original(self, primitive)
        pair = self.__dict__.get("_dicom_node_wake")
        if pair is not None:
            with contextlib.suppress(OSError):  # buffer full (already poked) or closed
                pair[1].send(b"\0")
    send_pdu.__wrapped__ = original  # type: ignore[attr-defined]
    return send_pdu


def _install_dul_wake() -> bool:
    import inspect

    from pynetdicom import dul

    source = inspect.getsource(dul.DULServiceProvider.run_reactor)
    send_src = inspect.getsource(dul.DULServiceProvider.send_pdu)
    if (dul.time is not _time or "time.sleep(self._run_loop_delay)" not in source
            or "self.to_provider_queue.put(primitive)" not in send_src
            or not issubclass(dul.DULServiceProvider, threading.Thread)):
        return False
    dul.time = _DulTime(dul.DULServiceProvider)  # type: ignore[assignment]
    dul.DULServiceProvider.send_pdu = _wrap_send_pdu(  # type: ignore[method-assign]
        dul.DULServiceProvider.send_pdu)
    return True


def _recv(self: Any, nr_bytes: int) -> bytearray:
    """``AssociationSocket.recv`` reading straight into one buffer."""
    buf = bytearray(nr_bytes)
    n = 0
    with memoryview(buf) as view:
        while n < nr_bytes:
            got = self.socket.recv_into(view[n:], nr_bytes - n)
            if not got:  # connection closed: return what arrived, like pynetdicom
                break
            n += got
    if n < nr_bytes:
        del buf[n:]
    return buf


def _install_recv() -> bool:
    import inspect

    from pynetdicom.transport import AssociationSocket

    source = inspect.getsource(AssociationSocket.recv)
    if "bufsize = 4096" not in source or "bytestream = bytearray()" not in source:
        return False
    AssociationSocket.recv = _recv  # type: ignore[method-assign]
    return True


def install(parts: frozenset[str] = frozenset({"reactor", "recv", "dul_wake"})) -> bool:
    """Apply the named parts ("reactor", "recv", "dul_wake") if pynetdicom's internals are
    as expected; return whether the association reactor part is active."""
    global _installed
    try:
        import inspect

        import pynetdicom
        from pynetdicom import association
        from pynetdicom.dimse import DIMSEServiceProvider

        source = inspect.getsource(association.Association._run_reactor)
        dimse_src = inspect.getsource(DIMSEServiceProvider.__init__)
        expected = (f"time.sleep({_REACTOR_PAUSE})" in source
                    and "msg_queue" in dimse_src and "queue.Queue" in dimse_src)
    except Exception as err:  # pragma: no cover - depends on the installed pynetdicom
        log.info("association reactor tweak not applied: %s", err)
        return False
    if "reactor" in parts and not _installed:
        if not expected or association.time is not _time:
            log.info("association reactor tweak not applied: pynetdicom %s differs",
                     pynetdicom.__version__)
            return False
        association.time = _WakingTime(association.Association)  # type: ignore[assignment]
        _installed = True
    for name, apply in (("recv", _install_recv), ("dul_wake", _install_dul_wake)):
        if name not in parts:
            continue
        try:
            if not apply():
                log.info("%s tweak not applied: pynetdicom %s differs from 3.0.x", name,
                         pynetdicom.__version__)
        except Exception as err:  # pragma: no cover - depends on the installed pynetdicom
            log.info("%s tweak not applied: %s", name, err)
    return _installed or "reactor" not in parts
