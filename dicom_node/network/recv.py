"""Read each PDU with ``recv_into`` into one buffer (guarded pynetdicom tweak).

pynetdicom 3.0.x's ``AssociationSocket.recv`` reads a PDU in 4096-byte ``socket.recv``
calls appended to a bytearray (~130 calls per 512x512 CT slice). :func:`install` replaces
it by one that reads into a buffer of the requested size with ``recv_into`` for whatever
the kernel has; same contract (returns the bytes read, fewer only if the peer closed;
socket errors, timeouts included, propagate unchanged).

The size requested is a PDU length from the peer: :mod:`.guard` refuses any PDU longer
than the node's maximum before this read happens, so the buffer is never larger than one
maximum PDU (without that guard a 6-byte header claiming 4 GiB allocated 4 GiB).
"""

from __future__ import annotations

import inspect
from typing import Any


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


def install() -> bool:
    """Apply the tweak if pynetdicom's ``recv`` is the one it was verified on (3.0.x);
    return whether it is in place."""
    from pynetdicom.transport import AssociationSocket

    if AssociationSocket.recv is _recv:
        return True
    source = inspect.getsource(AssociationSocket.recv)
    if "bufsize = 4096" not in source or "bytestream = bytearray()" not in source:
        return False
    AssociationSocket.recv = _recv  # type: ignore[method-assign]
    return True
