"""Run the node's ASGI application on uvicorn in a thread of the ``serve`` process.

The listening socket is bound in the caller's thread, so that a port in use fails
``start()`` at once, as the DIMSE listener does.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import threading
import time
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from dicom_node.http.app import create_app
from dicom_node.http.guard import ConnectionGuard

if TYPE_CHECKING:
    from dicom_node.node import Node

log = logging.getLogger(__name__)


BACKLOG = 128  # connections the kernel queues, and asyncio accepts in one turn


def connection_limit(configured: int) -> int:
    """``http.max_connections``, or fewer if the process may not open enough files for
    them: a connection may hold 3 descriptors (its socket, a STOW-RS part's spool file,
    its fsync's), a turn of accepts takes up to :data:`BACKLOG` more (those beyond the
    limit are closed after), and a quarter of the limit is left to the rest of the node
    (DIMSE, the index, files ready ahead). With ``ulimit -n 256``, 200 uploads stalled
    mid-part took every descriptor: accept() failed thousands of times a second (each
    logged with a traceback) and /health hung."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    allowed = max(8, (soft - soft // 4 - BACKLOG) // 3)
    if allowed < configured:
        log.warning(
            "HTTP: at most %d connections (http.max_connections %d), as this process may "
            "open %d files (ulimit -n): raise that limit for more",
            allowed,
            configured,
            soft,
        )
    return min(configured, allowed)


class HttpServer:
    """The HTTP port: ``start()`` binds and serves, ``stop()`` drains and closes."""

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.config.http
        self.host = settings.effective_bind(node.config.bind_address)
        self.port = settings.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Bind the port and serve requests (returns once the server is up)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are
        # TCP; without it each keep-alive response waited ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        settings = self.node.config.http
        guard = ConnectionGuard(
            settings.max_header_kb * 1024,
            settings.header_timeout_seconds,
            connection_limit(settings.max_connections),
            settings.body_timeout_seconds,
        )
        config = uvicorn.Config(
            create_app(self.node, guard),
            # uvicorn's own protocol (httptools if installed, else h11) inside the guard.
            http=guard.protocol(import_from_string(HTTP_PROTOCOLS["auto"])),
            ws="none",
            backlog=BACKLOG,  # uvicorn's 2048 let one turn accept 2048 descriptors
            h11_max_incomplete_event_size=settings.max_header_kb * 1024,
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=30,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve([sock])), name="http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"HTTP server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        log.info("HTTP listening on %s:%d", self.host, self.port)

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let running requests finish (up to ``grace`` s), close."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(grace + 5)
        if self._thread.is_alive():
            log.warning("HTTP server still busy after %.0f s; leaving it", grace)
        self._server = None
        self._thread = None
