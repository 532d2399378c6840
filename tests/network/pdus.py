"""Raw DICOM upper-layer PDUs for hostile-input tests: built by hand (so they can lie)
and read back off a plain socket."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage, Verification

from dicom_node.synthetic import iter_ct_series, new_uid

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DICOM_APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"  # PS3.7 A.2.1
ECHO_CX, STORE_CX = 1, 3  # the presentation context ids we propose
A_ASSOCIATE_AC, A_ASSOCIATE_RJ, P_DATA_TF, A_RELEASE_RP, A_ABORT = 0x02, 0x03, 0x04, 0x06, 0x07
RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
ABORT_RQ = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def pdu(kind: int, body: bytes, length: int | None = None) -> bytes:
    """A PDU of ``kind``; ``length`` lies about the body's length if given."""
    return struct.pack(">BBI", kind, 0, len(body) if length is None else length) + body


def associate_rq(
    called: bytes = b"DICOM_NODE",
    calling: bytes = b"HOSTILE",
    contexts: tuple[tuple[int, str, str], ...] = (
        (ECHO_CX, Verification, IMPLICIT),
        (STORE_CX, CTImageStorage, EXPLICIT),
    ),
    max_pdu: int = 16384,
    app_context: bytes | None = DICOM_APPLICATION_CONTEXT,
) -> bytes:
    """An A-ASSOCIATE-RQ (AE titles and Application Context Name as raw bytes, so they
    may be anything; ``app_context=None`` leaves that item out)."""
    body = struct.pack(">HH", 1, 0) + called.ljust(16)[:16] + calling.ljust(16)[:16] + bytes(32)
    if app_context is not None:
        body += _item(0x10, app_context)
    for cx_id, abstract, ts in contexts:
        body += _item(
            0x20,
            bytes([cx_id, 0, 0, 0]) + _item(0x30, abstract.encode()) + _item(0x40, ts.encode()),
        )
    body += _item(
        0x50, _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, b"1.2.826.0.1.3680043.9.7433.1")
    )
    return pdu(0x01, body)


def pdv(cx_id: int, control: int, data: bytes) -> bytes:
    """One presentation data value item (control 0x03: last command fragment, 0x02: last
    dataset fragment, 0x00/0x01: more follow)."""
    return struct.pack(">IBB", len(data) + 2, cx_id, control) + data


def p_data(*pdvs: bytes) -> bytes:
    return pdu(P_DATA_TF, b"".join(pdvs))


def echo_command(message_id: int = 1) -> bytes:
    rq = C_ECHO()
    rq.MessageID = message_id
    rq.AffectedSOPClassUID = Verification
    msg = C_ECHO_RQ()
    msg.primitive_to_message(rq)
    return bytes(encode(msg.command_set, True, True))


def small_ct() -> Dataset:
    """A 16x16 CT slice of a new study (new UIDs on every call)."""
    return next(iter(iter_ct_series(1, rows=16, cols=16, study_uid=new_uid())))


def store_command(ds: Dataset, message_id: int = 2) -> bytes:
    rq = C_STORE()
    rq.MessageID = message_id
    rq.AffectedSOPClassUID = ds.SOPClassUID
    rq.AffectedSOPInstanceUID = ds.SOPInstanceUID
    rq.Priority = 0
    rq.DataSet = BytesIO(b"\0")  # non-empty: CommandDataSetType says a dataset follows
    msg = C_STORE_RQ()
    msg.primitive_to_message(rq)
    return bytes(encode(msg.command_set, True, True))


def raw_store_command(
    sop_class: str, sop_instance: str, message_id: int | None = 2, priority: int = 0
) -> bytes:
    """A C-STORE-RQ command set built element by element, so that it may lie: a Message
    ID left out (``None``), a Priority out of range, any SOP Class UID."""
    cmd = Dataset()
    cmd.CommandGroupLength = 0
    cmd.AffectedSOPClassUID = sop_class
    cmd.CommandField = 0x0001
    if message_id is not None:
        cmd.MessageID = message_id
    cmd.Priority = priority
    cmd.CommandDataSetType = 0x0000  # a dataset follows
    cmd.AffectedSOPInstanceUID = sop_instance
    cmd.CommandGroupLength = len(encode(cmd, True, True)) - 12  # after the length element
    return bytes(encode(cmd, True, True))


def c_store(ds: Dataset, command: bytes | None = None) -> list[bytes]:
    """The two P-DATA PDUs of a C-STORE of ``ds``: its command, then its whole dataset."""
    return [
        p_data(pdv(STORE_CX, 0x03, command or store_command(ds))),
        p_data(pdv(STORE_CX, 0x02, dataset_bytes(ds))),
    ]


def dataset_bytes(ds: Dataset) -> bytes:
    return bytes(encode(ds, False, True))


def valid_stream(ds: Dataset | None = None) -> list[bytes]:
    """A whole valid association as sent by an SCU: A-ASSOCIATE-RQ, C-ECHO, one small
    C-STORE, A-RELEASE-RQ (one PDU per item)."""
    ds = ds if ds is not None else small_ct()
    return [
        associate_rq(),
        p_data(pdv(ECHO_CX, 0x03, echo_command())),
        p_data(pdv(STORE_CX, 0x03, store_command(ds))),
        p_data(pdv(STORE_CX, 0x02, dataset_bytes(ds))),
        RELEASE_RQ,
    ]


@dataclass
class Pdu:
    kind: int
    body: bytes


def read_pdus(sock: socket.socket, timeout: float = 10.0) -> Iterator[Pdu]:
    """PDUs the peer sends until it closes the connection (or ``timeout`` passes between
    bytes: TimeoutError)."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        while len(buf) >= 6:
            kind, _, length = struct.unpack(">BBI", buf[:6])
            if len(buf) < 6 + length:
                break
            yield Pdu(kind, buf[6 : 6 + length])
            buf = buf[6 + length :]
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return
        if not chunk:
            return
        buf += chunk


def store_statuses(pdus: list[Pdu], command_field: int | None = None) -> list[int]:
    """The Status of every DIMSE response in the P-DATA PDUs received (only of those with
    ``command_field``, e.g. 0x8001 for C-STORE-RSP, if given)."""
    from pydicom.filebase import DicomBytesIO
    from pynetdicom.dsutils import decode

    statuses = []
    for p in pdus:
        if p.kind != P_DATA_TF:
            continue
        at = 0
        while at < len(p.body):
            length = struct.unpack(">I", p.body[at : at + 4])[0]
            control, data = p.body[at + 5], p.body[at + 6 : at + 4 + length]
            at += 4 + length
            if control & 1:
                cmd = decode(DicomBytesIO(data), True, True)
                if "Status" in cmd and command_field in (None, cmd.get("CommandField")):
                    statuses.append(int(cmd.Status))
    return statuses


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def exchange(port: int, *chunks: bytes, timeout: float = 10.0) -> list[Pdu]:
    """Send ``chunks`` on a new connection, then read what the node sends until it closes
    the connection."""
    with connect(port) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        return list(read_pdus(sock, timeout))


def exchange_associated(port: int, *chunks: bytes, timeout: float = 10.0) -> list[Pdu]:
    """Associate (A-ASSOCIATE-RQ, wait for the A-ASSOCIATE-AC), then send ``chunks``;
    return every PDU the node sent until it closed the connection."""
    with connect(port) as sock:
        sock.sendall(associate_rq())
        reader = read_pdus(sock, timeout)
        got = [next(reader)]
        if got[0].kind == A_ASSOCIATE_AC:
            for chunk in chunks:
                try:
                    sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
        got.extend(reader)
        return got
