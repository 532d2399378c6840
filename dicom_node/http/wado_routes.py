"""WADO-RS routes (PS3.18 10.4): instances, metadata, bulk data, frames, renderings and
thumbnails, each read for a client with the ``read`` role."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import Request
from pydicom.uid import UID
from starlette.responses import Response, StreamingResponse

from dicom_node.http import (
    bulk,
    frames_decode,
    metadata_json,
    render,
    render_params,
    stow,
    thumbnail,
    transcode,
    wado,
    wado_accept,
)
from dicom_node.http import frames as frame_io
from dicom_node.http.app import authorize, node_of
from dicom_node.http.links import base_url
from dicom_node.http.multipart import new_boundary
from dicom_node.http.problem import Problem

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    syntaxes = wado_accept.accepted_syntaxes(wado_accept.requested(request))
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
    wado_accept.check_json_accept(wado_accept.requested(request))
    base = base_url(request)
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
    wado_accept.check_bulk_accept(wado_accept.requested(request))
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
    the media type the ``accept`` parameter, else the Accept header, asks (8.7.8.1)."""
    rendering = render_params.parse(request.query_params)
    media = render.rendered_type(wado_accept.requested(request))
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
    acceptable = wado_accept.requested(request)
    media, ts, decode = frame_io.negotiate(acceptable, stored_ts, decodable)
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
    media = render.rendered_type(wado_accept.requested(request))
    viewport = thumbnail.viewport(request.query_params.getlist("viewport"))
    rendering = render_params.Rendering(viewport)
    inst, frame = _indexed(
        request, lambda session: thumbnail.choose(session, study, series, instance, frames)
    )
    body = render.render(inst, media, _decode_limit(request), frame, rendering)
    return Response(body, media_type=media)


def _decode_limit(request: Request) -> int:
    return node_of(request).config.http.max_decoded_mb * 2**20
