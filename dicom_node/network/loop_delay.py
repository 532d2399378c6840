"""A DUL loop pause that follows the association's traffic (guarded pynetdicom tweak).

pynetdicom's DUL reactor sleeps ``DULServiceProvider._run_loop_delay`` (1 ms) whenever a
pass finds nothing to do, so each incoming C-STORE waits up to that long before it is
read, and its response up to that long before it is sent. pynetdicom's own comment on
the attribute names the trade: more CPU while idle, less latency per request.

:func:`apply` takes both sides of it per association: the pause is short
(:data:`LOOP_DELAY`) while PDUs arrive (:func:`note_traffic`, called by the guard's PDU
read), and once none has arrived for :data:`IDLE_AFTER` a daemon thread lengthens it to
:data:`IDLE_DELAY`. An idle association then costs the DUL thread 200 wake-ups a second
instead of 5,000; the first PDU after a pause waits up to that long, once.
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from typing import Any

LOOP_DELAY = 0.0002  # seconds, while PDUs arrive; pynetdicom's default is 0.001
IDLE_DELAY = 0.005  # seconds, once the association has been quiet for IDLE_AFTER
IDLE_AFTER = 0.05  # seconds without a received PDU
CHECK_EVERY = 0.025  # seconds between two looks for quiet associations

# DUL thread -> when it last received a PDU (monotonic seconds)
_last_pdu: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_watcher: threading.Thread | None = None
_busy = threading.Event()  # some association is on the short pause


def check() -> bool:
    """Whether pynetdicom's DUL reactor pauses on ``_run_loop_delay`` as expected."""
    from pynetdicom import dul

    reactor = inspect.getsource(dul.DULServiceProvider.run_reactor)
    init = inspect.getsource(dul.DULServiceProvider.__init__)
    return "time.sleep(self._run_loop_delay)" in reactor and "self._run_loop_delay" in init


def apply(assoc: Any) -> bool:
    """Pace the DUL loop of ``assoc`` (an acceptor) by its traffic; return whether it
    was applied."""
    global _watcher
    dul = getattr(assoc, "dul", None)
    if not isinstance(getattr(dul, "_run_loop_delay", None), float):
        return False
    with _lock:
        _last_pdu[dul] = time.monotonic()
        if _watcher is None:
            _watcher = threading.Thread(target=_lengthen_idle, daemon=True, name="dul-pacing")
            _watcher.start()
    dul._run_loop_delay = LOOP_DELAY
    _busy.set()
    return True


def note_traffic(dul: Any) -> None:
    """A PDU arrived on ``dul``: the short pause again (if this tweak paces it)."""
    if dul in _last_pdu:
        _last_pdu[dul] = time.monotonic()
        dul._run_loop_delay = LOOP_DELAY
        _busy.set()


def _lengthen_idle() -> None:
    """Give every association quiet for :data:`IDLE_AFTER` the long pause; sleeps while
    none is on the short one."""
    while True:
        _busy.wait()
        # Cleared before the pass, never after it: a PDU arriving during the pass sets it
        # again, so the association it shortened is looked at once more.
        _busy.clear()
        time.sleep(CHECK_EVERY)
        if _pass():
            _busy.set()


def _pass() -> bool:
    """One look at every paced association; whether any is still on the short pause.
    A function of its own: the DULs it looked at must not stay referenced while the
    watcher sleeps (they would be listed again next pass, and never collected)."""
    now, short = time.monotonic(), False
    with _lock:
        paced = list(_last_pdu)
    for dul in paced:
        if dul._run_loop_delay == IDLE_DELAY:
            continue
        last = _last_pdu.get(dul)  # as late as can be: a PDU may have just arrived
        if last is not None and now - last >= IDLE_AFTER:
            dul._run_loop_delay = IDLE_DELAY
        else:
            short = True
    return short
