"""DICOMweb routes under ``/dicomweb`` (PS3.18): STOW-RS, QIDO-RS, WADO-RS (thumbnails too)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response, StreamingResponse

from dicom_node.http import (
    bulk,
    frames_decode,
    metadata_json,
    qido,
    qido_query,
    render,
    render_params,
    stow,
    thumbnail,
    transcode,
    wado,
    wado_accept,
)
from dicom_node.http import frames as frame_io
from dicom_node.http.app import authorize, body_chunks, node_of
from dicom_node.http.multipart import MultipartError, new_boundary
from dicom_node.http.problem import Problem

log = logging.getLogger(__name__)

T = TypeVar("T")
PREFIX = "/dicomweb"
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

    base = _base(request)

    def store_all() -> tuple[list[stow.PartResult], bytes]:
        # One part after the other: each part's fsync started as it arrived, so it is
        # done or nearly so; storing them on several threads per request only added GIL
        # hand-offs (4 clients: -15 to -27% instances/s in a same-run A/B).
        try:
            results = [stow.store_part(intake, part, source, study) for part in body.parts]
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


def _base(request: Request) -> str:
    """The DICOMweb root URL for links in responses: ``http.public_url`` if configured,
    else the Host the client used, with the port it connected to when its Host header
    names none (dicomweb-client sends the bare host)."""
    public = node_of(request).config.http.public_url
    if public:
        return public.rstrip("/") + PREFIX
    host = request.headers.get("host", "")
    server = request.scope.get("server")
    if host and ":" not in host.rsplit("]", 1)[-1] and server and server[1]:
        host = f"{host}:{server[1]}"
    root = f"{request.url.scheme}://{host}" if host else str(request.base_url)
    return root.rstrip("/") + PREFIX


def _search(request: Request, level: str, **fixed: str | None) -> Response:
    authorize(request, "read")
    wado_accept.check_json_accept(request.headers.get("accept"))
    keys = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID"}
    query = qido_query.parse(
        level,
        list(request.query_params.multi_items()),
        {keys[k]: v for k, v in fixed.items() if v is not None},
    )
    request.app.state.results.sync_if_due()
    with node_of(request).db.session() as session:
        results = qido.search(session, query, _base(request))
    headers = {"Warning": ", ".join(query.warnings)} if query.warnings else None
    return JSONResponse(results, media_type=stow.DICOM_JSON, headers=headers)


def search_studies(request: Request) -> Response:
    """QIDO-RS ``GET /studies``."""
    return _search(request, "study")


def search_series(request: Request, study: str | None = None) -> Response:
    """QIDO-RS ``GET /series`` and ``/studies/{study}/series``."""
    return _search(request, "series", study=study)


def search_instances(
    request: Request, study: str | None = None, series: str | None = None
) -> Response:
    """QIDO-RS ``GET /instances``, ``/studies/{s}/instances``, ``.../series/{se}/instances``."""
    return _search(request, "instance", study=study, series=series)


def _indexed(request: Request, lookup: Callable[[Any], T]) -> T:
    """``lookup`` of a session of the index, for a client with the ``read`` role."""
    authorize(request, "read")
    request.app.state.results.sync_if_due()
    node = node_of(request)
    wado.MAX_ELEMENTS[0] = node.config.http.max_header_elements  # (a reload may change it)
    with node.db.session() as session:
        return lookup(session)


def _stored(
    request: Request, study: str, series: str | None = None, instance: str | None = None
) -> list[wado.Stored]:
    return _indexed(request, lambda session: wado.find(session, study, series, instance))


def retrieve(
    request: Request, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """WADO-RS retrieve of a study, series or instance, streamed from the files."""
    found = _stored(request, study, series, instance)
    syntaxes = wado_accept.accepted_syntaxes(request.headers.get("accept"))
    wado.check_files(found)
    limit = _decode_limit(request)
    trailers = transcode.check_convertible(found, syntaxes, limit)
    boundary = new_boundary()
    return frame_io.FramesResponse(  # closed at once if the client leaves: budget freed
        transcode.multipart(found, syntaxes, boundary, limit, trailers),
        media_type=f'multipart/related; type="{wado_accept.DICOM}"; boundary={boundary}',
    )


def retrieve_metadata(
    request: Request, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    """WADO-RS metadata: DICOM JSON of each instance, bulk data as BulkDataURI."""
    found = _stored(request, study, series, instance)  # authorized first: 401 before 406
    wado_accept.check_json_accept(request.headers.get("accept"))
    base = _base(request)
    wado.check_files(found)

    def encoded(inst: wado.Stored) -> bytes:
        body = metadata_json.metadata(inst, wado.instance_url(base, inst))
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

    first = encoded(found[0])  # its problems answered before the response starts

    def array() -> Iterator[bytes]:
        # One instance at a time: a study's JSON was built whole (a few MB of tiny
        # elements per instance take hundreds of MB as Python objects).
        yield b"[" + first
        for inst in found[1:]:
            try:
                data = encoded(inst)
            except Problem as err:
                log.error(
                    "WADO-RS metadata of instance %s of study %s: %s; response cut",
                    inst.sop,
                    inst.study,
                    err.detail,
                )
                raise frame_io.ResponseCut from None
            yield b"," + data
        yield b"]"

    return frame_io.FramesResponse(array(), media_type=stow.DICOM_JSON)


def retrieve_bulk(request: Request, study: str, series: str, instance: str, tag: str) -> Response:
    """WADO-RS bulk data of one element, as one application/octet-stream part streamed
    from the file (a Range asks for a slice of it: 206)."""
    inst = _stored(request, study, series, instance)[0]
    value = bulk.locate(inst, tag, _decode_limit(request))
    span = bulk.byte_range(request.headers.get("range"), value.length)
    content_range, status = None, 200
    if span is not None:
        content_range = f"bytes {span[0]}-{span[1] - 1}/{value.length}"
        value, status = value.slice(*span), 206
    boundary = new_boundary()
    return StreamingResponse(
        bulk.multipart(value, boundary, content_range),
        status_code=status,
        media_type=f'multipart/related; type="{bulk.OCTET}"; boundary={boundary}',
    )


def retrieve_rendered(request: Request, study: str, series: str, instance: str) -> Response:
    """WADO-RS rendered single-frame image (image/jpeg or image/png)."""
    return _rendered(request, _stored(request, study, series, instance)[0])


def _rendered(request: Request, inst: wado.Stored, frame: int | None = None) -> Response:
    """``inst`` (its ``frame``) rendered as the query parameters (PS3.18 8.3.5) ask, as
    the media type the ``accept`` parameter, else the Accept header, asks."""
    query = request.query_params
    rendering = render_params.parse(query)
    accept = render_params.accept(query.getlist("accept"), request.headers.get("accept"))
    media = render.rendered_type(accept)
    body = render.render(inst, media, _decode_limit(request), frame, rendering)
    return Response(body, media_type=media)


def retrieve_frames(
    request: Request, study: str, series: str, instance: str, frames: str
) -> Response:
    """WADO-RS frames: one part per requested frame, as stored or decoded."""
    inst = _stored(request, study, series, instance)[0]
    numbers = frame_io.parse_frame_list(frames)
    if not inst.rows:
        raise Problem(404, "Not Found", f"instance {instance} has no Pixel Data, so no frames")
    stored_ts = inst.transfer_syntax
    decodable = UID(stored_ts).is_encapsulated and transcode.decodable(stored_ts)
    media, ts, decode = frame_io.negotiate(request.headers.get("accept"), stored_ts, decodable)
    pixels = frame_io.layout(inst)
    frame_io.check_numbers(inst, pixels, numbers)
    limit = _decode_limit(request)
    if decode:
        data = frames_decode.decoded_frames(inst, pixels, numbers, limit)
    else:
        data = frame_io.frame_bytes(inst, pixels, numbers, limit)
    boundary = new_boundary()
    return frame_io.FramesResponse(
        frame_io.multipart(data, media, ts, boundary),
        media_type=(
            f'multipart/related; type="{media}"; transfer-syntax={ts}; boundary={boundary}'
        ),
    )


def retrieve_frame_rendered(
    request: Request, study: str, series: str, instance: str, frames: str
) -> Response:
    """WADO-RS rendered frame of an image (image/jpeg or image/png)."""
    inst = _stored(request, study, series, instance)[0]
    numbers = frame_io.parse_frame_list(frames)
    if len(numbers) != 1:
        raise Problem(400, "Bad Request", "frames are rendered one at a time")
    return _rendered(request, inst, numbers[0])


def retrieve_thumbnail(
    request: Request,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    frames: str | None = None,
) -> Response:
    """WADO-RS thumbnail of a study, series, instance or frame (image/jpeg or image/png),
    of the image :mod:`.thumbnail` chooses, fitted to the ``viewport``."""
    authorize(request, "read")
    query = request.query_params
    accept = render_params.accept(query.getlist("accept"), request.headers.get("accept"))
    media = render.rendered_type(accept)
    rendering = render_params.Rendering(thumbnail.viewport(query.getlist("viewport")))
    inst, frame = _indexed(
        request, lambda session: thumbnail.choose(session, study, series, instance, frames)
    )
    body = render.render(inst, media, _decode_limit(request), frame, rendering)
    return Response(body, media_type=media)


def _decode_limit(request: Request) -> int:
    return node_of(request).config.http.max_decoded_mb * 2**20


def register(app: FastAPI) -> None:
    """Add the DICOMweb routes to ``app``."""
    study, series, inst = "/studies/{study}", "/series/{series}", "/instances/{instance}"
    routes = [
        ("/studies", store_instances, "POST"),
        (study, store_instances, "POST"),
        ("/studies", search_studies, "GET"),
        ("/series", search_series, "GET"),
        ("/instances", search_instances, "GET"),
        (f"{study}/series", search_series, "GET"),
        (f"{study}/instances", search_instances, "GET"),
        (f"{study}{series}/instances", search_instances, "GET"),
        (study, retrieve, "GET"),
        (f"{study}{series}", retrieve, "GET"),
        (f"{study}{series}{inst}", retrieve, "GET"),
        (f"{study}/metadata", retrieve_metadata, "GET"),
        (f"{study}{series}/metadata", retrieve_metadata, "GET"),
        (f"{study}{series}{inst}/metadata", retrieve_metadata, "GET"),
        (f"{study}{series}{inst}/bulk/{{tag:path}}", retrieve_bulk, "GET"),
        (f"{study}{series}{inst}/rendered", retrieve_rendered, "GET"),
        (f"{study}{series}{inst}/frames/{{frames}}", retrieve_frames, "GET"),
        (f"{study}{series}{inst}/frames/{{frames}}/rendered", retrieve_frame_rendered, "GET"),
        (f"{study}/thumbnail", retrieve_thumbnail, "GET"),
        (f"{study}{series}/thumbnail", retrieve_thumbnail, "GET"),
        (f"{study}{series}{inst}/thumbnail", retrieve_thumbnail, "GET"),
        (f"{study}{series}{inst}/frames/{{frames}}/thumbnail", retrieve_thumbnail, "GET"),
    ]
    for path, endpoint, method in routes:
        app.add_api_route(PREFIX + path, endpoint, methods=[method], include_in_schema=False)
