"""Memoised C-STORE-RSP encoding (guarded pynetdicom tweak).

pynetdicom turns every response primitive into a pydicom command-set Dataset, encodes it
once to measure its group length and again to send it: CPU per C-STORE (see
``benchmarks/receive.py``), all under the GIL while the sender waits for the answer. A
C-STORE-RSP without an Error Comment or Offending Element differs from the previous one
only in its Message ID Being Responded To and Affected SOP Instance UID, so
:func:`install` wraps ``DIMSEServiceProvider.send_msg``: such a response is encoded by
pynetdicom once per (SOP Class, SOP Instance UID length, status), with the two values
spliced into a copy for each later one, and sent as the single P-DATA pynetdicom would
send. Anything else (requests, other services, responses with comments, an
``EVT_DIMSE_SENT`` handler that wants the message object, a peer PDU too small for it)
goes through pynetdicom as before.
"""

from __future__ import annotations

import functools
from typing import Any

_MSG_ID_TAG = b"\x00\x00\x20\x01\x02\x00\x00\x00"  # (0000,0120) US, implicit VR LE
_SOP_UID_TAG = b"\x00\x00\x00\x10"  # (0000,1000) UI
_PLACEHOLDER_MSG_ID = 0x7777


@functools.lru_cache(maxsize=1024)
def _around(sop_class_uid: str, uid_length: int, status: int) -> tuple[bytes, bytes, bytes]:
    """pynetdicom's encoding of such a response, split around its two varying values."""
    from pynetdicom.dimse_messages import C_STORE_RSP
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode

    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = _PLACEHOLDER_MSG_ID
    rsp.AffectedSOPClassUID = sop_class_uid
    rsp.AffectedSOPInstanceUID = "1" * uid_length
    rsp.Status = status
    msg = C_STORE_RSP()
    msg.primitive_to_message(rsp)
    data = encode(msg.command_set, True, True)
    assert isinstance(data, bytes)
    at_id = data.index(_MSG_ID_TAG) + len(_MSG_ID_TAG)
    at_uid = data.index(_SOP_UID_TAG) + 8
    uid_end = at_uid + int.from_bytes(data[at_uid - 4 : at_uid], "little")
    if not at_id + 2 <= at_uid:  # pynetdicom orders elements by tag
        raise ValueError("unexpected C-STORE-RSP layout")
    return data[:at_id], data[at_id + 2 : at_uid], data[uid_end:]


def encoded_store_response(
    sop_class_uid: str, sop_instance_uid: str, message_id: int, status: int
) -> bytes:
    """The command set pynetdicom would encode for this C-STORE-RSP."""
    head, middle, tail = _around(sop_class_uid, len(sop_instance_uid), status)
    uid = sop_instance_uid.encode("ascii")
    return head + message_id.to_bytes(2, "little") + middle + uid + b"\0" * (len(uid) % 2) + tail


def _plain_store_response(primitive: Any) -> bool:
    from pynetdicom.dimse_primitives import C_STORE

    return (
        type(primitive) is C_STORE
        and primitive.MessageIDBeingRespondedTo is not None
        and primitive.ErrorComment is None
        and primitive.OffendingElement is None
        and isinstance(primitive.Status, int)
        and primitive.AffectedSOPClassUID is not None
        and primitive.AffectedSOPInstanceUID is not None
        and primitive.AffectedSOPInstanceUID.isascii()
    )


def _wrap_send_msg(original: Any) -> Any:
    from pynetdicom import evt
    from pynetdicom.pdu_primitives import P_DATA

    def send_msg(self: Any, primitive: Any, context_id: int) -> None:
        if not _plain_store_response(primitive) or self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
            return original(self, primitive, context_id)
        data = encoded_store_response(
            str(primitive.AffectedSOPClassUID),
            str(primitive.AffectedSOPInstanceUID),
            int(primitive.MessageIDBeingRespondedTo),
            primitive.Status,
        )
        if self.maximum_pdu_size and len(data) + 7 > self.maximum_pdu_size:
            return original(self, primitive, context_id)
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, b"\x03" + data))
        self.dul.send_pdu(pdata)
        return None

    send_msg.__wrapped__ = original  # type: ignore[attr-defined]
    return send_msg


def install() -> bool:
    """Apply the memoised encoding if pynetdicom's ``send_msg`` looks as expected."""
    import inspect

    from pynetdicom import dimse

    send = dimse.DIMSEServiceProvider.send_msg
    if getattr(send, "__wrapped__", None) is not None:
        return True
    source = inspect.getsource(send)
    if (
        "dimse_msg.primitive_to_message(primitive)" not in source
        or "dimse_msg.encode_msg(context_id, self.maximum_pdu_size)" not in source
        or "EVT_DIMSE_SENT" not in source
    ):
        return False
    dimse.DIMSEServiceProvider.send_msg = _wrap_send_msg(send)  # type: ignore[method-assign]
    return True
