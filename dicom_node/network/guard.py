"""Guards against hostile peers in pynetdicom's receive path (always on; pinned hooks).

pynetdicom 3.0.x trusts what arrives more than a node on a hospital network may:

- it reads a PDU of whatever length its header claims, ignoring the maximum PDU size it
  negotiated, so a peer can make an association hold any amount of memory;
- a P-DATA on a presentation context that was never negotiated (or a dataset fragment
  on another context than its command's) raises on the DUL thread, or is written into
  the C-STORE under way and answered; a second command before the first one's dataset
  opens a second spool file and orphans the first;
- an exception in a state-machine action (an invalid event for the current state, a
  malformed primitive) kills the DUL thread without an A-ABORT, leaving the socket, the
  association thread and any spool file behind;
- a connection that ends before its A-ASSOCIATE-RQ (a port probe) leaves its association
  thread waiting for one until ``acse_timeout``, holding an association slot.

:func:`install` replaces ``DULServiceProvider._read_pdu_data`` by a bounded read (a
P-DATA beyond the AE's ``maximum_pdu_size``, any other PDU beyond
:data:`OTHER_PDU_LIMIT`, is refused before its body is read), checks each P-DATA's
context ids before the DIMSE layer sees it, and makes a failed state-machine action
abort the association, and ends the association thread of a connection that closed
before associating. A refused association gets an A-ABORT (the state machine's own
"invalid PDU" event, Evt19) and nothing more of what its peer sends is read or decoded.
pynetdicom's own ERROR for each value it refuses (with a traceback for a non-ASCII AE
title) goes to DEBUG through a logging filter: the abort's WARNING is the one line.
These are pynetdicom internals: the hooks apply only to the source they were verified
on, and ``tests/network/test_guards_installed.py`` fails if they do not install.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import struct
from typing import Any

from dicom_node.network import loop_delay

log = logging.getLogger(__name__)

OTHER_PDU_LIMIT = 1 << 20  # A-ASSOCIATE-RQ and friends: a few kB in practice
_PDU_TYPES = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07)
_REFUSED = "_dicom_node_refused"
_installed = False


def _refuse(dul: Any, why: str) -> None:
    """Abort the association of ``dul`` (A-ABORT via the state machine) and read nothing
    more from its peer."""
    if not getattr(dul, _REFUSED, False):
        setattr(dul, _REFUSED, True)
        assoc = dul.assoc
        peer = getattr(getattr(assoc, "requestor", None), "address", "?")
        log.warning("aborting association from %s: %s", peer, why)
        dul.event_queue.put("Evt19")  # "invalid PDU": A-ABORT, then close


def abort_association(assoc: Any, why: str) -> None:
    """Abort ``assoc`` as a refused peer is (A-ABORT via the state machine, nothing more
    of what its peer sends read or decoded); safe on its DUL thread."""
    dul = getattr(assoc, "dul", None)
    if dul is not None:
        _refuse(dul, why)


def _closed(dul: Any) -> None:
    """The peer closed, or stayed silent past the network timeout in the middle of a PDU:
    close our end too (Evt17 follows), so that no half-open socket holds a slot."""
    if dul.socket is not None and dul.socket.socket is not None:
        dul.socket.close()
    else:
        dul.event_queue.put("Evt17")


RECV_CHUNK = 1 << 16  # bytes read at a time when a PDU's length has no bound


def _recv_pdu(sock: Any, header: bytes, length: int, *, preallocate: bool) -> bytearray | None:
    """``header`` and the next ``length`` bytes of ``sock`` (a whole PDU), or None if the
    peer closed or stayed silent past the socket's timeout first.

    pynetdicom reads 4 kB per ``recv`` (a 512 kB C-STORE: 128 calls, each with its own
    poll, bytes object and copy). With ``preallocate`` (a length already checked against
    a limit, on an established association) it is read straight into a buffer of that
    size; otherwise the buffer grows only with what actually arrives, so a lying header
    cannot make the node allocate."""
    try:
        if preallocate:
            buf = bytearray(len(header) + length)
            buf[: len(header)] = header
            with memoryview(buf) as view:
                got = len(header)
                while got < len(buf):
                    n = sock.recv_into(view[got:])
                    if not n:
                        return None
                    got += n
            return buf
        buf = bytearray(header)
        end = len(header) + length
        while len(buf) < end:
            chunk = sock.recv(min(end - len(buf), RECV_CHUNK))
            if not chunk:
                return None
            buf += chunk
        return buf
    except (OSError, AttributeError):  # TimeoutError is an OSError; no socket: closed
        return None


def _read_pdu_data(self: Any) -> None:
    """pynetdicom's ``_read_pdu_data`` with the PDU length bounded before the read and
    every read bounded by the network timeout."""
    from pynetdicom.dul import DULServiceProvider

    sock = self.socket.socket
    if sock is not None and sock.gettimeout() is None:
        # Accepted sockets block forever by default: a peer sending half a PDU would
        # hold the association (and its slot) with no timer ever firing.
        sock.settimeout(self.assoc.network_timeout)
    if getattr(self, _REFUSED, False):  # drain, never decode; close when the peer does
        try:
            if not sock.recv(65536):
                _closed(self)
        except (OSError, AttributeError):
            _closed(self)
        return
    try:
        header = self.socket.recv(6)
        pdu_type, _, length = struct.unpack(">BBL", header)
    except (OSError, TimeoutError, struct.error):
        _closed(self)  # closed (or silent) before a whole header
        return
    if pdu_type not in _PDU_TYPES:
        _refuse(self, f"unknown PDU type 0x{pdu_type:02X}")
        return
    limit = OTHER_PDU_LIMIT
    if pdu_type == 0x04 and self.assoc.is_acceptor:  # what we told the peer we receive
        limit = self.assoc.ae.maximum_pdu_size
    if limit and length > limit:
        _refuse(self, f"PDU of {length} bytes, more than the maximum {limit}")
        return
    # Only an established association's P-DATA is read into a buffer of its claimed
    # size: there are at most max_associations of those. Any other PDU grows with what
    # arrives (connections waiting for their A-ASSOCIATE-RQ are many: network/waiting.py).
    preallocate = bool(limit) and pdu_type == 0x04 and bool(self.assoc.is_established)
    pdu_bytes = _recv_pdu(sock, header, length, preallocate=preallocate)
    if pdu_bytes is None:
        _closed(self)  # closed, or silent past the network timeout, mid-PDU
        return
    try:
        pdu, event = DULServiceProvider._decode_pdu(self, pdu_bytes)
    except Exception as err:  # noqa: BLE001 - a hostile PDU may raise anything in the decoder
        _refuse(self, f"undecodable PDU: {type(err).__name__}: {err}")
        return
    self.event_queue.put(event)
    self._recv_pdu.put(pdu)
    loop_delay.note_traffic(self)


def _wrap_receive_primitive(original: Any) -> Any:
    """``DIMSEServiceProvider.receive_primitive`` refusing P-DATA whose fragments are on
    a context that was not accepted, or not on their command's context."""

    def receive_primitive(self: Any, primitive: Any) -> None:
        from pynetdicom.pdu_primitives import P_DATA

        dul = self.assoc.dul
        if getattr(dul, _REFUSED, False):
            return
        if isinstance(primitive, P_DATA):
            accepted = self.assoc._accepted_cx
            message = self.message
            command_cx = getattr(message, "context_id", None)
            for context_id, data in primitive.presentation_data_value_list:
                if context_id not in accepted:
                    _refuse(
                        dul, f"P-DATA on presentation context {context_id}, which was not accepted"
                    )
                    return
                is_command = bool(data[:1]) and data[0] & 1
                if is_command and command_cx is not None:
                    # pynetdicom would start a second spool file and orphan the first
                    _refuse(dul, "a command while the previous command's dataset is pending")
                    return
                if (
                    not data
                    or (not is_command and command_cx is None)
                    or (command_cx is not None and context_id != command_cx)
                ):
                    _refuse(
                        dul,
                        f"dataset fragment on context {context_id} does not follow "
                        "a command on that context",
                    )
                    return
                if is_command and data[0] & 2:
                    command_cx = context_id
        original(self, primitive)

    receive_primitive.__wrapped__ = original  # type: ignore[attr-defined]
    return receive_primitive


def _wrap_do_action(original: Any) -> Any:
    """``StateMachine.do_action`` aborting the association instead of letting an
    exception end the DUL thread with the connection left open."""

    def do_action(self: Any, event: str) -> None:
        before = self.current_state
        try:
            original(self, event)
        except Exception as err:  # noqa: BLE001 - any failed action must abort, not hang
            _abort_hard(self.dul, f"{type(err).__name__}: {err}")
            return
        if self.current_state == "Sta1" and before in _UNASSOCIATED:
            _no_request(self.dul)

    do_action.__wrapped__ = original  # type: ignore[attr-defined]
    return do_action


# States of an acceptor whose A-ASSOCIATE-RQ may not have been handed to its association
# thread: awaiting it, or awaiting the close after aborting before it.
_UNASSOCIATED = ("Sta2", "Sta13")


def _no_request(dul: Any) -> None:
    """The connection of ``dul`` ended (state Sta1) without an A-ASSOCIATE-RQ handed to
    its association thread, which would wait for one until ``acse_timeout``, holding an
    association slot and its threads (a port probe closing at once held one for 30 s):
    wake it with pynetdicom's own "no request" (None), which ends it as that timeout
    would."""
    assoc = dul.assoc
    if (
        assoc.is_acceptor
        and getattr(assoc.requestor, "primitive", None) is None
        and dul.to_user_queue.empty()
    ):
        dul.to_user_queue.put(None)


def _abort_hard(dul: Any, why: str) -> None:
    """What pynetdicom itself does for an exception in its DUL loop (A-ABORT straight on
    the socket, both reactors stopped), plus closing the socket and telling the
    handlers, so that nothing of the association stays behind."""
    from pynetdicom import evt
    from pynetdicom.pdu import A_ABORT_RQ

    assoc = dul.assoc
    peer = getattr(getattr(assoc, "requestor", None), "address", "?")
    log.warning("aborting association from %s: %s", peer, why)
    log.debug("state machine failure", exc_info=True)
    setattr(dul, _REFUSED, True)
    sock = dul.socket
    with contextlib.suppress(Exception):
        if sock is not None and sock.socket is not None:
            pdu = A_ABORT_RQ()
            pdu.source, pdu.reason_diagnostic = 0x02, 0x00
            sock.socket.sendall(pdu.encode())
    with contextlib.suppress(Exception):
        if sock is not None:
            sock.close()
    was_established = assoc.is_established
    assoc.is_aborted = True
    assoc.is_established = False
    assoc._kill = True
    dul._kill_thread = True
    if was_established:
        evt.trigger(assoc, evt.EVT_ABORTED, {})


# pynetdicom.utils functions that log an ERROR (with a traceback, for decode_bytes) for
# each value they refuse and then raise ValueError for it
_RAISING = ("decode_bytes", "set_ae", "set_uid")


class _QuietDecodeFailures(logging.Filter):
    """pynetdicom logs every value of a PDU it cannot decode or refuses (a non-ASCII or
    control character in an AE title of an A-ASSOCIATE-RQ, an invalid UID) at ERROR, with
    a traceback for a non-ASCII one, then raises ValueError, which the guard reports as
    one WARNING line (undecodable PDU) when it aborts the association: the ERROR record
    goes to DEBUG, traceback and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.funcName in _RAISING and record.levelno == logging.ERROR:
            log.debug("pynetdicom: %s", record.getMessage(), exc_info=record.exc_info)
            return False
        return True


def quiet_decode_failures() -> None:
    """Attach :class:`_QuietDecodeFailures` to the logger of ``pynetdicom.utils``
    (standard logging configuration). Idempotent."""
    logger = logging.getLogger("pynetdicom.utils")
    if not any(isinstance(f, _QuietDecodeFailures) for f in logger.filters):
        logger.addFilter(_QuietDecodeFailures())


def _verified() -> bool:
    from pynetdicom import association, dimse, dul, fsm

    read = inspect.getsource(dul.DULServiceProvider._read_pdu_data)
    receive = inspect.getsource(dimse.DIMSEServiceProvider.receive_primitive)
    action = inspect.getsource(fsm.StateMachine.do_action)
    reactor = inspect.getsource(dul.DULServiceProvider.run_reactor)
    acceptor = inspect.getsource(association.Association.run_reactor)
    return (
        "bytestream.extend(self.socket.recv(6))" in read
        and "self.socket.recv(pdu_length)" in read
        and "self._decode_pdu(bytestream)" in read
        and "self._recv_pdu.put(pdu)" in read
        and "self.message.decode_msg(primitive, self.assoc)" in receive
        and "self.dul.kill_dul()" in action
        and "raise InvalidEventError" in action
        and "self.state_machine.do_action(event)" in reactor
        and "primitive = self.dul.receive_pdu(wait=True, timeout=self.acse_timeout)" in acceptor
        and "if primitive is None:\n                self.kill()" in acceptor
    )


def install() -> bool:
    """Install the guards if pynetdicom is the version they were verified on; return
    whether they are in place. Idempotent."""
    global _installed
    quiet_decode_failures()
    if _installed:
        return True
    from pynetdicom import dimse, dul, fsm

    try:
        ok = _verified()
    # As in inline.py: no source, or a renamed internal, means another pynetdicom.
    except (AttributeError, ImportError, OSError, TypeError) as err:  # pragma: no cover
        log.error("receive guards not installed: %s", err)
        return False
    if not ok:
        import pynetdicom

        log.error(
            "receive guards not installed: pynetdicom %s differs from the 3.0.x they "
            "were verified on",
            pynetdicom.__version__,
        )
        return False
    dul.DULServiceProvider._read_pdu_data = _read_pdu_data  # type: ignore[method-assign]
    dimse.DIMSEServiceProvider.receive_primitive = _wrap_receive_primitive(  # type: ignore[method-assign]
        dimse.DIMSEServiceProvider.receive_primitive
    )
    fsm.StateMachine.do_action = _wrap_do_action(fsm.StateMachine.do_action)  # type: ignore[method-assign]
    _installed = True
    return True
