"""The ASGI application of the node's HTTP port.

FastAPI (on Starlette): DICOMweb handlers read the raw request stream and write
streaming responses (Starlette's own primitives), while the admin API under ``/api`` gets
its OpenAPI document and request validation from FastAPI and pydantic, which the
configuration already uses.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicom_node import metrics
from dicom_node.http.guard import ConnectionGuard, GuardMiddleware
from dicom_node.http.problem import Problem, problem_response
from dicom_node.http.results import ResultIndex
from dicom_node.settings.http import ROLE_RANK

if TYPE_CHECKING:
    from dicom_node.node import Node

log = logging.getLogger(__name__)


def node_of(request: Request) -> Node:
    """The node this application serves."""
    return request.app.state.node


def authorize(request: Request, role: str) -> str | None:
    """The name of the bearer token if it grants ``role``; Problem 401/403 otherwise.
    Without any configured token (loopback only) every request is allowed."""
    tokens = node_of(request).config.http.tokens
    if not tokens:
        return None
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise Problem(401, "Unauthorized", "send 'Authorization: Bearer <token>'")
    # Digests of equal length: the comparison takes the same time whatever is sent.
    sent = hashlib.sha256(secret.strip().encode()).digest()
    for t in tokens:
        if hmac.compare_digest(hashlib.sha256(t.token.encode()).digest(), sent):
            if ROLE_RANK[t.role] < ROLE_RANK[role]:
                raise Problem(
                    403, "Forbidden", f"token {t.name!r} has role {t.role}, this needs {role}"
                )
            return t.name
    raise Problem(401, "Unauthorized", "unknown token")


async def body_chunks(request: Request, limit: int, what: str) -> AsyncIterator[bytes]:
    """The request body as it arrives; Problem 413 (by Content-Length before reading, or
    once ``limit`` bytes have come; the rest is read and dropped, so that the client gets
    the answer, until ``http.header_timeout_seconds``) and 408 (the connection is closed)
    when the client pauses longer than ``http.body_timeout_seconds`` or, past
    ``http.body_grace_seconds``, sends slower than ``http.body_min_kb_per_second`` on
    average: a byte every 59 s held a connection, its spool file and its share of
    ``http.max_connections`` for ever."""
    length = request.headers.get("content-length", "")
    size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit // 1024} kB"
    too_large = f"{what} exceeds {size}"
    if length.isdigit() and int(length) > limit:
        raise Problem(413, "Content Too Large", f"Content-Length {length}: {too_large}")
    settings = node_of(request).config.http
    timeout = settings.body_timeout_seconds
    rate = settings.body_min_kb_per_second * 1000  # bytes/s; 0: no minimum
    loop = asyncio.get_running_loop()
    # The body must have come by grace + received / rate: each byte buys time.
    start = loop.time() + settings.body_grace_seconds
    stream = request.stream().__aiter__()
    received = 0
    while True:
        wait = timeout
        if rate:
            wait = min(timeout, max(0.0, start + received / rate - loop.time()))
        try:
            # asyncio.timeout, not wait_for: no task per chunk (~10% of STOW-RS CPU).
            async with asyncio.timeout(wait):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            if wait < timeout:
                raise _too_slow(request, received, rate) from None
            metrics.HTTP_CLOSED.labels("body_timeout").inc()
            raise Problem(
                408,
                "Request Timeout",
                f"no byte of the body came for {timeout:g} s (http.body_timeout_seconds)",
                {"Connection": "close"},
            ) from None
        received += len(chunk)
        if received > limit:
            raise Problem(413, "Content Too Large", too_large)
        yield chunk


def _too_slow(request: Request, received: int, rate: float) -> Problem:
    """The 408 for a body slower than ``http.body_min_kb_per_second`` (logged, with the
    client's address, as every Problem is)."""
    metrics.HTTP_CLOSED.labels("body_too_slow").inc()
    grace = node_of(request).config.http.body_grace_seconds
    return Problem(
        408,
        "Request Timeout",
        f"the body came slower than {rate / 1000:g} kB/s after {grace:g} s "
        f"(http.body_min_kb_per_second, http.body_grace_seconds): {received} bytes in "
        f"{grace + received / rate:.0f} s",
        {"Connection": "close"},
    )


class RequestMetrics:
    """Counts each request by method, route template and status; times it by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status[0])).inc()
            metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - t0)


def create_app(node: Node, guard: ConnectionGuard | None = None) -> FastAPI:
    """The application serving ``node``: health, metrics, DICOMweb, the admin API;
    ``guard`` learns when each request runs (:mod:`.guard`)."""
    from dicom_node.http import admin, dicomweb, health

    app = FastAPI(
        title="dicom-node",
        version="1",
        openapi_url=None,  # served below, behind a read token when tokens are configured
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> JSONResponse:
        authorize(request, "read")
        return JSONResponse(app.openapi())

    app.state.node = node
    app.state.results = ResultIndex(node.db)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Any:
        log.warning(
            "%s %s from %s: %d %s",
            request.method,
            request.url.path,
            request.client.host if request.client else "?",
            exc.status,
            exc.detail or exc.title,
        )
        return exc.response(str(request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        return problem_response(
            exc.status_code,
            str(exc.detail),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return problem_response(
            422,
            "Unprocessable Content",
            "; ".join(errors),
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Any:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem_response(
            500, "Internal Server Error", f"{type(exc).__name__}", instance=request.url.path
        )

    health.register(app)
    dicomweb.register(app)
    admin.register(app)
    app.add_middleware(RequestMetrics)
    if guard is not None:
        app.add_middleware(GuardMiddleware, guard=guard)
    return app
