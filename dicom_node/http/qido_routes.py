"""QIDO-RS routes (PS3.18 10.6): searches for studies, series and instances as DICOM JSON."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import JSONResponse, Response

from dicom_node.http import qido, qido_query, stow, wado_accept
from dicom_node.http.app import authorize, node_of
from dicom_node.http.links import base_url


def _search(request: Request, level: str, **fixed: str | None) -> Response:
    authorize(request, "read")
    wado_accept.check_json_accept(wado_accept.requested(request))
    keys = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID"}
    query = qido_query.parse(
        level,
        list(request.query_params.multi_items()),
        {keys[k]: v for k, v in fixed.items() if v is not None},
    )
    request.app.state.results.sync_if_due()
    with node_of(request).db.session() as session:
        results = qido.search(session, query, base_url(request))
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
