"""Serve C-STORE requests on the association's DUL thread (guarded pynetdicom tweak).

pynetdicom 3.0.x reassembles each DIMSE request on the association's DUL thread, queues it
for the association thread, which runs the service and queues the response back to the
DUL thread to send. Under one GIL each of those two hand-offs costs a thread switch,
~0.1-0.4 ms per C-STORE, while the peer waits for the response. This node negotiates no
asynchronous operations, so a storage SCU sends one request at a time and nothing is
gained by a second thread: :func:`serve_inline` gives an association a message queue
that runs a C-STORE request's service right where the DUL thread queues it. The response
goes out on the DUL thread's very next pass.

Only a valid C-STORE request of a Storage SOP class on an accepted presentation context,
arriving while the association thread has nothing queued or in service and no release is
under way, is served inline; everything else (C-ECHO, unknown contexts, a request racing a
release) takes pynetdicom's own path unchanged. (For a SOP class that is not a Storage
one pynetdicom finds no service and calls ``abort()``, which waits for the DUL thread to
stop: on the DUL thread itself that would wait forever.) If pynetdicom's internals do not
look as expected (another version), nothing is patched.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import threading
from typing import Any

log = logging.getLogger(__name__)

_supported: bool | None = None


@functools.lru_cache(maxsize=512)
def _is_storage(sop_class: str) -> bool:
    """Whether pynetdicom serves ``sop_class`` with its Storage service class."""
    from pynetdicom.service_class import StorageServiceClass
    from pynetdicom.sop_class import uid_to_service_class

    return uid_to_service_class(sop_class) is StorageServiceClass


class _InlineQueue(queue.Queue):  # type: ignore[type-arg]
    """``DIMSEServiceProvider.msg_queue`` that serves C-STORE requests as they are put."""

    def __init__(self, assoc: Any) -> None:
        super().__init__()
        self._assoc = assoc
        self._handed_out = False  # the association thread took an item and may serve it

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        # The association thread calls get() between services: the last one is finished.
        self._handed_out = False
        item = super().get(block, timeout)
        self._handed_out = True
        return item

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        from pynetdicom.dimse_primitives import C_STORE

        context_id, primitive = item
        assoc = self._assoc
        if (
            isinstance(primitive, C_STORE)
            and primitive.is_valid_request
            and threading.current_thread() is assoc.dul
            and context_id in assoc._accepted_cx
            and assoc.is_established
            and not assoc._sent_release
            and not self._handed_out
            and self.empty()
            and _is_storage(str(primitive.AffectedSOPClassUID))
        ):
            assoc._serve_request(primitive, context_id)
            return
        super().put(item, block, timeout)


def _check() -> bool:
    from pynetdicom import association, dimse

    receive = inspect.getsource(dimse.DIMSEServiceProvider.receive_primitive)
    get_msg = inspect.getsource(dimse.DIMSEServiceProvider.get_msg)
    reactor = inspect.getsource(association.Association._run_reactor)
    serve = inspect.getsource(association.Association._serve_request)
    return (
        "self.msg_queue.put((context_id" in receive
        and "self.msg_queue.get(" in get_msg
        and "self.dimse.get_msg(block=False)" in reactor
        and "self._accepted_cx[context_id]" in serve
        and "_sent_release" in serve
    )


def supported() -> bool:
    """Whether pynetdicom is as this tweak expects (checked once)."""
    global _supported
    if _supported is None:
        try:
            _supported = _check()
        # inspect.getsource: OSError/TypeError without source; a renamed internal:
        # AttributeError/ImportError. Any of them means "not the pynetdicom we know".
        except (AttributeError, ImportError, OSError, TypeError) as err:  # pragma: no cover
            log.info("inline C-STORE tweak not applied: %s", err)
            _supported = False
        if not _supported:
            import pynetdicom

            log.info(
                "inline C-STORE tweak not applied: pynetdicom %s differs from 3.0.x",
                pynetdicom.__version__,
            )
    return _supported


def serve_inline(assoc: Any) -> bool:
    """Give ``assoc`` (an acceptor, before it is established) the inline message queue if
    pynetdicom is as expected; return whether it was given."""
    dimse = getattr(assoc, "dimse", None)
    if not supported() or not isinstance(getattr(dimse, "msg_queue", None), queue.Queue):
        return False
    if not isinstance(dimse.msg_queue, _InlineQueue):
        dimse.msg_queue = _InlineQueue(assoc)
    return True
