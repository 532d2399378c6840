"""A loopback HTTP destination that misbehaves on purpose (a real server, real sockets).

Every POST is answered by the ``answer`` given (see :func:`reply`, :func:`trickle`,
:func:`flood`); GETs answer 200 with an Orthanc-like success, so a client that turns a
redirected POST into a GET would "succeed". The server records each request and how
many bytes of its answer (body, or a slow head) it managed to send before the client
hung up.

    with HostileHttp(trickle(200, total=400, every=0.05)) as peer:
        report = deliver(stowrs(peer.url), files)
        assert peer.sent < 400
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["HostileHttp", "Seen", "flood", "reply", "slow_head", "trickle"]

Answer = Callable[["_Handler"], None]


@dataclass(frozen=True)
class Seen:
    """One request the peer received."""

    method: str
    path: str
    body_bytes: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_body(self) -> int:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                self.rfile.read(size + 2)
                total += size
                if size == 0:
                    return total
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        return n

    def do_GET(self) -> None:
        self.server.peer.seen.append(Seen("GET", self.path, 0))
        body = b'{"ID": "x", "Status": "Success"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        n = self._read_body()
        self.server.peer.seen.append(Seen("POST", self.path, n))
        self.server.peer.answer(self)

    def write_counted(self, data: bytes) -> bool:
        """Send bytes, counted; False once the client has hung up."""
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            return False
        with self.server.peer.lock:
            self.server.peer.sent += len(data)
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peer: HostileHttp


class HostileHttp:
    """The server; ``url``, ``seen`` (requests), ``sent`` (counted bytes written)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        self.sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.peer = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def __enter__(self) -> HostileHttp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # ends trickles and floods still writing
        self._server.shutdown()
        self._server.server_close()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    """A complete answer."""

    def answer(h: _Handler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.write_counted(body)

    return answer


def trickle(status: int, total: int, every: float) -> Answer:
    """Announce ``total`` body bytes, then send one every ``every`` seconds."""

    def answer(h: _Handler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/dicom+json")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        for _ in range(total):
            if h.server.peer.stopping.wait(every) or not h.write_counted(b" "):
                return

    return answer


def slow_head(status: int, total: int, every: float) -> Answer:
    """Send the status line and a header of ``total`` bytes one byte every ``every``
    seconds (each read gets a byte well within a per-read timeout), then end the head and
    answer an empty body: a complete, successful answer for a client that waits it out."""
    head = f"HTTP/1.1 {status} OK\r\nX-Slow: ".encode()
    head += b"a" * max(0, total - len(head))

    def answer(h: _Handler) -> None:
        for i in range(len(head)):
            if h.server.peer.stopping.wait(every) or not h.write_counted(head[i : i + 1]):
                return
        h.write_counted(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        h.close_connection = True

    return answer


def flood(status: int, total: int) -> Answer:
    """Answer a ``total``-byte body as fast as the client takes it."""
    chunk = b"x" * (1 << 20)

    def answer(h: _Handler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        left = total
        while left > 0 and not h.server.peer.stopping.is_set():
            n = min(left, len(chunk))
            if not h.write_counted(chunk[:n]):
                return
            left -= n

    return answer
