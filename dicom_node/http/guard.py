"""Limits on HTTP connections that uvicorn does not set: head size, head time, count.

uvicorn with httptools buffers a request head without bound (a 100 MB header grew the
node by 180 MB) and times out only idle keep-alive connections, so a client that sends
half a request line and then a byte now and then holds its connection for ever. The
guard wraps uvicorn's own protocol (passed as ``uvicorn.Config(http=...)``, its public
way to choose one) and:

* closes a connection whose request head passes ``http.max_header_kb`` (431);
* closes a connection that has no request running for ``http.header_timeout_seconds``
  (a stalled or trickled head, or a keep-alive connection left open);
* closes new connections at once while ``http.max_connections`` are open (503);
* answers a request uvicorn's parser refuses with problem JSON instead of uvicorn's plain
  text (:class:`ProtocolTransport`).

A request counts as running from the moment the application is called until it returns
(:class:`GuardMiddleware` tells the guard; the ASGI scope's ``client`` names the
connection). Request bodies are the application's to time (``http.body_timeout_seconds``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicom_node import metrics

log = logging.getLogger(__name__)

_END_OF_HEAD = b"\r\n\r\n"
# How uvicorn's protocols (httptools and h11) begin the 400 they send, then close, for a
# request their parser refuses; the application's own 400s are problem JSON.
_PARSER_400 = b"HTTP/1.1 400 Bad Request\r\n"
_PLAIN_TEXT = b"content-type: text/plain; charset=utf-8\r\n"


def _refusal(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps(
        {"type": "about:blank", "title": reason, "status": status, "detail": detail}
    ).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class ProtocolTransport:
    """The transport as uvicorn's protocol sees it. Everything passes through, except
    uvicorn's answer to a request its parser refuses (a malformed request line, a header
    with a control character, Content-Length with Transfer-Encoding, a bad chunk size):
    that 400 goes out as problem JSON, and the connection is closed as uvicorn would."""

    def __init__(self, conn: GuardedProtocol, transport: asyncio.Transport) -> None:
        self._conn = conn
        self._transport = transport
        self._replaced = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._replaced:  # the rest of uvicorn's plain-text answer (h11 writes in parts)
            return
        if data[: len(_PARSER_400)] == _PARSER_400:
            head = bytes(data[:1024]).lower()
            if _PLAIN_TEXT in head and b"\r\nconnection: close\r\n" in head:
                self._replaced = True
                self._conn.malformed()
                return
        self._transport.write(data)

    # What uvicorn's protocols call on every request, passed on without __getattr__.
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ConnectionGuard:
    """The limits, and the open connections by client address."""

    def __init__(
        self,
        max_head_bytes: int,
        head_timeout: float,
        max_connections: int,
        send_timeout: float | None = None,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.head_timeout = head_timeout
        self.max_connections = max_connections
        self.send_timeout = send_timeout  # longest wait for a client to take a response
        self.open: dict[tuple[str, int], GuardedProtocol] = {}

    def protocol(self, inner: Callable[..., asyncio.Protocol]) -> Callable[..., asyncio.Protocol]:
        """A protocol factory for ``uvicorn.Config(http=...)`` wrapping ``inner``."""

        def factory(**kwargs: Any) -> asyncio.Protocol:
            return GuardedProtocol(self, inner(**kwargs))

        return factory

    def started(self, client: Any) -> None:
        conn = self.open.get(tuple(client)) if client else None
        if conn is not None:
            conn.request_started()

    def abort(self, client: Any) -> None:
        """Drop a connection at once (its client stopped reading the response)."""
        conn = self.open.get(tuple(client)) if client else None
        if conn is not None and conn.transport is not None:
            conn.transport.abort()

    def finished(self, client: Any, body_left: int | None) -> None:
        conn = self.open.get(tuple(client)) if client else None
        if conn is not None:
            conn.request_finished(body_left)


class GuardedProtocol(asyncio.Protocol):
    """One connection: uvicorn's protocol inside, the limits around it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.key: tuple[str, int] | None = None
        self.running = 0  # requests the application is handling
        self.head_bytes = 0  # of the head being received
        self.in_head = True  # bytes now arriving belong to a request head
        self.skip = 0  # bytes of an unread body still to pass before the next head
        self.after_head = 0  # bytes passed on since the end of the last head
        self.inner_open = False
        self.tail = b""  # the last bytes seen, for an end of head split across reads
        self.timer: asyncio.TimerHandle | None = None
        self.refused = False

    # asyncio protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if len(self.guard.open) >= self.guard.max_connections:
            log.warning(
                "HTTP: %d connections open (http.max_connections); closing a new one",
                len(self.guard.open),
            )
            metrics.HTTP_CLOSED.labels("too_many_connections").inc()
            self._refuse(503, "Service Unavailable", "too many open connections")
            return
        peer = transport.get_extra_info("peername")
        if peer:
            self.key = (str(peer[0]), int(peer[1]))
            self.guard.open[self.key] = self
        self._arm()
        self.inner_open = True
        self.inner.connection_made(ProtocolTransport(self, transport))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.running == 0 and not self._head_within_limit(data):
            log.warning(
                "HTTP: request head from %s over http.max_header_kb; connection closed",
                self.key[0] if self.key else "?",
            )
            metrics.HTTP_CLOSED.labels("head_too_large").inc()
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"the request head exceeds {self.guard.max_head_bytes // 1024} kB",
            )
            return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner_open else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.key is not None and self.guard.open.get(self.key) is self:
            del self.guard.open[self.key]
        if self.inner_open:
            self.inner_open = False
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # requests -----------------------------------------------------------------------

    def request_started(self) -> None:
        self.running += 1
        self._disarm()

    def request_finished(self, body_left: int | None) -> None:
        """``body_left``: the length of a body the application did not read to its end
        (0 if it did; None if unknown, chunked)."""
        self.running = max(0, self.running - 1)
        if self.running:
            return
        if body_left is None and self.transport is not None:
            self.transport.close()  # where the next request would start is unknown
            return
        # Whatever of the unread body did not arrive yet is not the next head.
        self.skip = max(0, (body_left or 0) - self.after_head)
        self.in_head, self.head_bytes, self.tail, self.after_head = True, 0, b"", 0
        self._arm()

    # internals ----------------------------------------------------------------------

    def _head_within_limit(self, data: bytes) -> bool:
        """Count the bytes of the request head in ``data``; False past the limit."""
        if self.skip:
            used = min(self.skip, len(data))
            self.skip -= used
            data = data[used:]
        if not data:
            return True
        if not self.in_head:
            self.after_head += len(data)
            return True
        seen = self.tail + data
        end = seen.find(_END_OF_HEAD)
        if end >= 0:
            self.in_head = False  # the body (or a pipelined request) follows
            self.head_bytes += max(0, end - len(self.tail))
            self.after_head = len(seen) - end - len(_END_OF_HEAD)
        else:
            self.head_bytes += len(data)
            self.tail = seen[-3:]
        return self.head_bytes <= self.guard.max_head_bytes

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.guard.head_timeout, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        if self.running == 0 and self.transport is not None and not self.transport.is_closing():
            log.info(
                "HTTP: no complete request from %s in %.0f s; connection closed",
                self.key[0] if self.key else "?",
                self.guard.head_timeout,
            )
            metrics.HTTP_CLOSED.labels("head_timeout").inc()
            self.transport.close()

    def malformed(self) -> None:
        """uvicorn's parser refused the request: answer 400 as problem JSON, close."""
        log.warning(
            "HTTP: malformed request from %s (refused by the HTTP parser); connection closed",
            self.key[0] if self.key else "?",
        )
        metrics.HTTP_CLOSED.labels("malformed_request").inc()
        # Called from uvicorn's own data_received: it closes the transport next, and
        # learns of the loss from connection_lost as usual (unlike in _refuse).
        self.refused = True
        self._disarm()
        assert self.transport is not None
        detail = (
            "malformed HTTP request: its request line, a header, its framing "
            "(Content-Length, Transfer-Encoding) or a chunk size could not be parsed"
        )
        self.transport.write(_refusal(400, "Bad Request", detail))
        self.transport.close()

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self.refused = True
        self._disarm()
        assert self.transport is not None
        self.transport.write(_refusal(status, reason, detail))
        self.transport.close()
        if self.inner_open:  # uvicorn's protocol learns at once that the connection is gone
            self.inner_open = False
            self.inner.connection_lost(None)


class GuardMiddleware:
    """Tells the guard when the application starts and finishes a request, and how much
    of its body it left unread; drops a connection whose client takes no part of the
    response for ``send_timeout`` seconds (a reader that stalls would hold its file,
    buffers and thread for ever)."""

    def __init__(self, app: ASGIApp, guard: ConnectionGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"0")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        expected: int | None = None if chunked else int(length) if length.isdigit() else 0
        done = [False]  # the application read the body to its end

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                done[0] = True
            return message

        client = scope.get("client")
        timeout = self.guard.send_timeout
        dropped = [False]

        async def timed_send(message: Message) -> None:
            try:
                async with asyncio.timeout(timeout):  # no task per message, unlike wait_for
                    await send(message)
            except TimeoutError:
                dropped[0] = True
                log.warning(
                    "HTTP: %s took no response bytes for %g s; connection dropped",
                    client[0] if client else "?",
                    timeout,
                )
                metrics.HTTP_CLOSED.labels("send_timeout").inc()
                self.guard.abort(client)
                raise OSError("the client stopped reading the response") from None

        self.guard.started(client)
        try:
            await self.app(scope, counting_receive, send if timeout is None else timed_send)
        except Exception:
            if not dropped[0]:
                raise  # a dropped reader is logged above, once
        finally:
            self.guard.finished(client, 0 if done[0] else expected)
