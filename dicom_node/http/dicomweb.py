"""DICOMweb routes under ``/dicomweb`` (PS3.18): STOW-RS."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from dicom_node.http import stow
from dicom_node.http.app import authorize, node_of
from dicom_node.http.multipart import MultipartError
from dicom_node.http.problem import Problem
from dicom_node.intake import Source

log = logging.getLogger(__name__)

PREFIX = "/dicomweb"


async def _spool_body(request: Request, boundary: str, incoming: object,
                      max_bytes: int) -> stow.StowBody:
    """Read the request body into spooled parts; Problem 400/413 (nothing kept) if the
    body is malformed or too large."""
    body = stow.StowBody(boundary, incoming, max_bytes)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            body.reader.feed(chunk)
        body.reader.finish()
    except MultipartError as err:
        body.discard()
        raise Problem(400, "Bad Request", f"malformed multipart body: {err}") from None
    except stow.RequestTooLarge:
        body.discard()
        raise Problem(413, "Content Too Large",
                      f"the request body exceeds http.max_request_mb "
                      f"({max_bytes // 2**20} MB)") from None
    except BaseException:  # client went away, server stopping: keep nothing
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
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise Problem(413, "Content Too Large",
                      f"Content-Length {length} exceeds http.max_request_mb "
                      f"({cfg.http.max_request_mb} MB)")
    body = await _spool_body(request, boundary, node.store.incoming, max_bytes)
    source = Source(called_ae=web.ae_title, calling_ae=token or "http",
                    peer_address=request.client.host if request.client else None)
    intake = node.scp.intake

    def store_all() -> list[stow.PartResult]:
        results = []
        try:
            for part in body.parts:
                results.append(stow.store_part(intake, part, source, study))
        finally:
            body.discard()  # parts not reached (an unexpected error) leave nothing
        return results

    results = await run_in_threadpool(store_all)
    stow.count(results, web.ae_title)
    base = str(request.base_url).rstrip("/") + PREFIX
    ds = stow.response_dataset(results, base, study)
    status = stow.http_status(results)
    log.info("STOW-RS from %s: %d part(s), %d stored, HTTP %d", source.calling_ae,
             len(results), sum(1 for r in results if not r.failure), status)
    return JSONResponse(ds.to_json_dict(), status_code=status, media_type=stow.DICOM_JSON)


def register(app: FastAPI) -> None:
    """Add the DICOMweb routes to ``app``."""
    app.add_api_route(f"{PREFIX}/studies", store_instances, methods=["POST"],
                      include_in_schema=False)
    app.add_api_route(f"{PREFIX}/studies/{{study}}", store_instances, methods=["POST"],
                      include_in_schema=False)
