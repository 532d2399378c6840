"""Keep-alive requests per second through the connection guard (``dicom_node/http/guard.py``)
around uvicorn's httptools protocol, with a trivial ASGI app, in this process.

One client sends N ``GET /`` one after another on one connection; the figure is what the
guard and uvicorn cost per request, nothing of the node's own routes. ``--code DIR``
imports the guard from another checkout, to compare two versions: run both a few times,
alternating (the figures of a shared machine vary by a third from run to run).

    python benchmarks/http_guard.py [--requests 20000] [--code DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))

    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from dicom_node.http.guard import ConnectionGuard

    guard = ConnectionGuard(65536, 60, 100)
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only then (as dicom_node/http/server.py does)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(
        _app, http=guard.protocol(HttpToolsProtocol), lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve([sock])), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    client = socket.create_connection(sock.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    start = time.perf_counter()
    for _ in range(args.requests):
        client.sendall(request)
        answer = b""
        while not answer.endswith(b"\r\n\r\nok"):
            chunk = client.recv(4096)
            if not chunk:
                raise SystemExit("the server closed the connection")
            answer += chunk
    elapsed = time.perf_counter() - start
    client.close()
    server.should_exit = True
    thread.join(5)
    print(f"{args.code}: {args.requests / elapsed:.0f} requests/s")


if __name__ == "__main__":
    main()
