"""STOW-RS routes (PS3.18 10.5): a multipart/related body spooled, stored part by part,
answered with the store response."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from dicom_node.http import stow
from dicom_node.http.app import authorize, body_chunks, node_of
from dicom_node.http.links import base_url
from dicom_node.http.multipart import MultipartError
from dicom_node.http.problem import Problem

log = logging.getLogger(__name__)

# STOW-RS parts begun on the event loop before other requests get a turn: each costs
# it about 0.5 ms (its spool file, headers, the start of its fsync), and one read of a
# body of empty parts held 5,000 of them (the loop blocked for 7 s).
PARTS_PER_TURN = 16


async def _spool_body(request: Request, boundary: str, max_bytes: int) -> stow.StowBody:
    """Read the request body into spooled parts; Problem 400/408/413 (nothing kept) if
    the body is malformed, stalls, is too large or has too many parts. Each part's fsync
    starts as soon as it is complete, so the disk works while the rest arrives
    (placement then finds it done); the event loop waits at most 2 ms for an fsync
    thread to take it."""
    node = node_of(request)
    store = node.store
    max_parts = node.config.http.max_parts

    def part_complete(part: stow.SpoolPart) -> None:
        # None when many wait already: placement fsyncs the file by name instead.
        part.synced = store.fsyncs.sync_ahead(part.path, wait_start=0.002)

    body = stow.StowBody(boundary, store.spool_file, max_bytes, part_complete, max_parts)
    try:
        what = "the request body (http.max_request_mb)"
        async for chunk in body_chunks(request, max_bytes, what):
            more = body.reader.feed(chunk, PARTS_PER_TURN)
            while more:  # other requests' turn: a chunk of tiny parts took seconds
                await asyncio.sleep(0)
                more = body.reader.resume(PARTS_PER_TURN)
        body.reader.finish()
    except MultipartError as err:
        body.discard()
        raise Problem(400, "Bad Request", f"malformed multipart body: {err}") from None
    except stow.RequestTooLarge:
        body.discard()
        raise Problem(
            413,
            "Content Too Large",
            f"the request body exceeds http.max_request_mb ({max_bytes // 2**20} MB)",
        ) from None
    except stow.TooManyParts:
        body.discard()
        raise Problem(
            413,
            "Content Too Large",
            f"the request has more than http.max_parts ({max_parts}) parts",
        ) from None
    except ClientDisconnect:
        body.discard()
        log.warning(
            "STOW-RS: the client disconnected before the end of the body; nothing of it was kept"
        )
        raise Problem(400, "Bad Request", "the client disconnected mid-body") from None
    except OSError as err:  # disk full, incoming/ unwritable: nothing half-written stays
        body.discard()
        log.error("STOW-RS: cannot spool the request body: %s", err.strerror or err)
        raise Problem(
            503, "Service Unavailable", f"cannot write the request to disk: {err.strerror or err}"
        ) from None
    except BaseException:  # server stopping: keep nothing
        body.discard()
        raise
    if not body.parts:
        raise Problem(400, "Bad Request", "the multipart body has no part")
    return body


async def store_instances(request: Request, study: str | None = None) -> Response:
    """STOW-RS: store every part; answer the PS3.18 store response."""
    node = node_of(request)
    cfg = node.config
    web = cfg.http.web_source
    token = authorize(request, "write")
    if web.allowed_tokens and token not in web.allowed_tokens:
        raise Problem(403, "Forbidden", f"token {token!r} may not store to {web.ae_title}")
    boundary = stow.parse_content_type(request.headers.get("content-type"))
    max_bytes = cfg.http.max_request_mb * 2**20
    t0 = time.perf_counter()
    body = await _spool_body(request, boundary, max_bytes)
    t_received = time.perf_counter()
    source = stow.Source(
        called_ae=web.ae_title,
        calling_ae=token or "http",
        peer_address=request.client.host if request.client else None,
    )
    intake = node.scp.intake

    base = base_url(request)

    def store_all() -> tuple[list[stow.PartResult], bytes]:
        # On this one thread, in batches: each part's fsync started as it arrived, so it
        # is done or nearly so; storing them on several threads per request only added
        # GIL hand-offs (4 clients: -15 to -27% instances/s in a same-run A/B).
        try:
            results = stow.store_parts(intake, body.parts, source, study)
        finally:
            body.discard()  # parts not reached (an unexpected error) leave nothing
        # The answer is built here too: for 10,000 parts it took the event loop 1 s.
        stow.count(results, web.ae_title)
        answer = stow.response_dataset(results, base, study).to_json_dict()
        return results, json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()

    try:
        results, answer = await run_in_threadpool(store_all)
    except BaseException:
        body.discard()  # storing never started (no thread: EMFILE): nothing stays spooled
        raise
    status = stow.http_status(results)
    log.info(
        "STOW-RS from %s: %d part(s), %d stored, HTTP %d (%.0f MB received in "
        "%.2f s, stored in %.2f s)",
        source.calling_ae,
        len(results),
        sum(1 for r in results if not r.failure),
        status,
        sum(p.size for p in body.parts) / 2**20,
        t_received - t0,
        time.perf_counter() - t_received,
    )
    return Response(answer, status_code=status, media_type=stow.DICOM_JSON)
