"""An incremental ``multipart/related`` reader: bytes in as they arrive, parts out to sinks.

The request body is fed chunk by chunk (:meth:`MultipartReader.feed`); each part's
headers are parsed and its body handed to a sink the caller creates for it (a spool file),
holding back only the few bytes that may begin the next delimiter. Memory stays bounded
by the chunk size plus the delimiter, whatever the size of the request or its parts.

Grammar (RFC 2046 section 5.1.1): an optional preamble, then for each part
``--boundary`` CRLF headers CRLF body, each body ending at CRLF ``--boundary``; the last
delimiter is ``--boundary--``. Anything after it (the epilogue) is ignored. The node's own
multipart answers take a fresh boundary from :func:`new_boundary`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from email.message import Message
from email.parser import HeaderParser
from typing import Protocol

MAX_HEADER_BYTES = 16 * 1024
# RFC 2046 allows 70 characters; Orthanc's DICOMweb plugin sends 73: be lenient.
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,200}$")


class MultipartError(ValueError):
    """The body is not well-formed multipart for its boundary."""


class PartSink(Protocol):
    """Receives one part's body."""

    def write(self, data: memoryview) -> None: ...
    def close(self) -> None: ...


def check_boundary(boundary: str) -> bytes:
    """The boundary as bytes; MultipartError if RFC 2046 does not allow it."""
    if not _BOUNDARY.match(boundary) or boundary.endswith(" "):
        raise MultipartError(f"invalid multipart boundary {boundary!r}")
    return boundary.encode("ascii")


_PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _END = range(5)


def new_boundary() -> str:
    """A fresh boundary for a multipart response."""
    return uuid.uuid4().hex


class MultipartReader:
    """Feeds a multipart body through; calls ``on_part(headers)`` for each part and writes
    its body into the sink it returns (closed when the part ends)."""

    def __init__(self, boundary: bytes, on_part: Callable[[Message], PartSink]) -> None:
        # Every delimiter is CRLF "--" boundary; the first may start the body, so the
        # reader behaves as if a CRLF came first.
        self.delimiter = b"\r\n--" + boundary
        self.on_part = on_part
        self.parts = 0
        self._buf = bytearray(b"\r\n")
        self._state = _PREAMBLE
        self._sink: PartSink | None = None

    @property
    def complete(self) -> bool:
        """Whether the closing delimiter was seen."""
        return self._state == _END

    def feed(self, chunk: bytes, max_parts: int | None = None) -> bool:
        """Process the next bytes of the body. With ``max_parts``, stop once that many
        parts have begun, the rest of the bytes kept: True if some are left, for
        :meth:`resume` (before the next feed)."""
        if self._state == _END:
            return False  # epilogue
        if self._state == _BODY and len(chunk) >= len(self.delimiter):
            chunk = self._body_chunk(chunk)
            if not chunk:
                return False
        self._buf += chunk
        return self.resume(max_parts)

    def resume(self, max_parts: int | None = None) -> bool:
        """Go on through the bytes held, as :meth:`feed`: True if it stopped after
        ``max_parts`` parts with bytes left (a chunk of tiny parts is thousands of
        them)."""
        limit = None if max_parts is None else self.parts + max_parts
        while self._step():
            if limit is not None and self.parts >= limit:
                return True
        return False

    def _body_chunk(self, chunk: bytes) -> bytes:
        """Inside a part's body: hand ``chunk`` to the sink straight from the bytes that
        arrived (not copied into the buffer first), up to a delimiter; return what
        follows the delimiter (b"" if none came), with the state advanced past it."""
        assert self._sink is not None
        held, n = self._buf, len(self.delimiter)
        # A delimiter starting in the held tail ends within the chunk's first n-1 bytes.
        i = (held + chunk[: n - 1]).find(self.delimiter) if held else -1
        if i >= 0:
            return chunk  # rare (a part ending right at a chunk's edge): the slow path
        if held:
            self._emit(len(held))
            held.clear()
        end = chunk.find(self.delimiter)
        view = memoryview(chunk)
        try:
            if end < 0:
                self._sink.write(view[: len(chunk) - (n - 1)])
                held += view[len(chunk) - (n - 1) :]
                return b""
            self._sink.write(view[:end])
        finally:
            view.release()
        self._sink.close()
        self._sink = None
        self._state = _AFTER_DELIMITER
        return chunk[end + n :]

    def finish(self) -> None:
        """The body ended: MultipartError unless the closing delimiter came."""
        self.resume()
        if self._state == _END:
            return
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self._state == _PREAMBLE:
            raise MultipartError(
                "no part found: the body never contains the boundary given in the Content-Type"
            )
        raise MultipartError("truncated: the body ended before the closing boundary")

    def _step(self) -> bool:
        """Advance one state if the buffer allows; return whether it did."""
        buf = self._buf
        if self._state == _PREAMBLE:
            i = buf.find(self.delimiter)
            if i < 0:
                del buf[: max(0, len(buf) - len(self.delimiter) + 1)]
                return False
            del buf[: i + len(self.delimiter)]
            self._state = _AFTER_DELIMITER
            return True
        if self._state == _AFTER_DELIMITER:
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = _END
                buf.clear()
                return False
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise MultipartError("malformed delimiter line")
                return False
            if buf[:end].strip(b" \t"):  # only transport padding may follow a boundary
                raise MultipartError("malformed delimiter line (wrong boundary?)")
            del buf[: end + 2]
            self._state = _HEADERS
            return True
        if self._state == _HEADERS:
            if buf[:2] == b"\r\n":  # a part without headers
                headers, skip = b"", 2
            else:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        raise MultipartError("part headers too long")
                    return False
                headers, skip = bytes(buf[:end]), end + 4
            del buf[:skip]
            try:
                message = HeaderParser().parsestr(headers.decode("latin-1"))
            except Exception as err:
                raise MultipartError(f"unreadable part headers: {err}") from err
            self.parts += 1
            self._sink = self.on_part(message)
            self._state = _BODY
            return True
        if self._state == _BODY:
            assert self._sink is not None
            i = buf.find(self.delimiter)
            if i < 0:
                keep = len(self.delimiter) - 1
                if len(buf) > keep:
                    self._emit(len(buf) - keep)
                    del buf[: len(buf) - keep]
                return False
            self._emit(i)
            self._sink.close()
            self._sink = None
            del buf[: i + len(self.delimiter)]
            self._state = _AFTER_DELIMITER
            return True
        return False

    def _emit(self, n: int) -> None:
        """Hand the first ``n`` buffered bytes to the part's sink (without a copy)."""
        assert self._sink is not None
        view = memoryview(self._buf)
        try:
            self._sink.write(view[:n])
        finally:
            view.release()  # the buffer must not be exported when it is resized
