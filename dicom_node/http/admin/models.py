"""Models (list, run one uploaded image) and route explanations (stored study or upload)."""

from __future__ import annotations

import pathlib
from typing import Any

from fastapi import Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dicom_node.http.admin.common import (
    MODELS,
    PROBLEM,
    Paging,
    router,
    set_total,
    total_header,
)
from dicom_node.http.admin.upload import uploaded
from dicom_node.http.app import authorize, node_of
from dicom_node.http.budget import DECODING
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import (
    ModelOut,
)
from dicom_node.index.tables import Group
from dicom_node.routing.explain import explain_path, explanation_to_dict
from dicom_node.store.writer import safe_component


@router.get(
    "/models", response_model=list[ModelOut], responses=total_header("models"), tags=["models"]
)
def list_models(
    request: Request,
    response: Response,
    limit: int = MODELS.limit("models"),
    offset: int = Paging.offset("models"),
) -> list[ModelOut]:
    """Loaded models (with their execution provider), then refused packages."""
    authorize(request, "read")
    registry = node_of(request).jobs.registry
    loaded = sorted(registry.models.items())
    set_total(response, len(loaded) + len(registry.errors))
    out = [
        ModelOut(
            name=name,
            version=m.identity.version,
            provider=m.provider,
            demo=m.identity.demo,
            status="loaded",
        )
        for name, m in loaded[offset : offset + limit]
    ]
    start = max(0, offset - len(loaded))
    out += [
        ModelOut(
            name=str(e.path), version="", provider="", demo=False, status=f"refused: {e.message}"
        )
        for e in registry.errors[start : start + limit - len(out)]
    ]
    return out


_BINARY = {"schema": {"type": "string", "format": "binary"}}
DICOM_BODY = {
    "content": {"application/dicom": _BINARY, "application/octet-stream": _BINARY},
    "required": True,
}


def _test_model(node: Any, name: str, path: pathlib.Path) -> dict[str, Any]:
    import pydicom

    from ai.decode import DecodeError
    from ai.preprocess import PreprocessError
    from dicom_node.cli.models import results_document

    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # noqa: BLE001 - pydicom may raise anything on arbitrary bytes
        raise Problem(400, "Bad Request", f"not a readable DICOM file: {err}") from None
    try:
        model = node.jobs.registry.get(name)
    except KeyError:
        raise Problem(404, "Not Found", f"no loaded model {name!r}") from None
    size, limit = _decoded_bytes(ds), node.config.http.max_decoded_mb * 2**20
    if size > limit:
        raise Problem(
            413,
            "Content Too Large",
            f"the image decodes to {size // 2**20} MB, past http.max_decoded_mb "
            f"({limit // 2**20} MB)",
        )
    applies, reason = model.applies_to(ds)
    DECODING.admit()
    try:
        with DECODING.hold(size, limit):
            results = model.infer(ds)
    except (DecodeError, PreprocessError) as err:
        raise Problem(422, "Unprocessable Content", str(err)) from None
    except TimeoutError as err:
        raise Problem(503, "Service Unavailable", str(err), {"Retry-After": "5"}) from None
    return {
        **results_document(model, results),
        "applies": applies,
        "not_applicable_because": None if applies else reason,
    }


def _decoded_bytes(ds: Any) -> int:
    """Bytes of the stored pixel values the header of ``ds`` claims (0 if it cannot say)."""
    from ai.decode import number_of_frames

    try:
        samples = int(ds.get("SamplesPerPixel", 1) or 1) * number_of_frames(ds)
        per_sample = (int(ds.get("BitsAllocated", 8) or 8) + 7) // 8
        return int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * samples * per_sample
    except (TypeError, ValueError):
        return 0


@router.post(
    "/models/{name}/test",
    openapi_extra={"requestBody": DICOM_BODY},
    responses={400: PROBLEM, 404: PROBLEM, 413: PROBLEM, 422: PROBLEM, 503: PROBLEM},
    tags=["models"],
)
async def test_model(request: Request, name: str) -> dict[str, Any]:
    """Run one uploaded DICOM image through a loaded model: every label's probability and
    decision (nothing is stored or sent), as ``models test --json``."""
    authorize(request, "admin")
    path = await uploaded(request)
    try:
        return await run_in_threadpool(_test_model, node_of(request), name, path)
    finally:
        path.unlink(missing_ok=True)


@router.post(
    "/routes/explain",
    openapi_extra={"requestBody": DICOM_BODY},
    responses={400: PROBLEM},
    tags=["routes"],
)
async def explain_upload(
    request: Request, called_ae: str = "", calling_ae: str = ""
) -> dict[str, Any]:
    """Which rule the current routes give an uploaded DICOM file (as if received on
    ``called_ae`` from ``calling_ae``), as ``route explain FILE``."""
    authorize(request, "read")
    node = node_of(request)
    path = await uploaded(request)

    def explain() -> dict[str, Any]:
        return explanation_to_dict(
            explain_path(path, node.jobs.rules(), called_ae=called_ae, calling_ae=calling_ae)
        )

    try:
        return await run_in_threadpool(explain)
    finally:
        path.unlink(missing_ok=True)


@router.get("/routes/explain", responses={404: PROBLEM}, tags=["routes"])
def explain_study(request: Request, study: str) -> dict[str, Any]:
    """Which rule the current routes give each series of a stored study, and the first
    failing condition of every rule before it."""
    authorize(request, "read")
    node = node_of(request)
    folder = node.store.instances / safe_component(study)
    with node.db.session() as s:
        called = s.scalar(
            select(Group.called_ae)
            .where(Group.study_uid == study)
            .order_by(Group.id.desc())
            .limit(1)
        )
    if called is None or not folder.is_dir():
        raise Problem(404, "Not Found", f"no stored study {study}")
    return explanation_to_dict(explain_path(folder, node.jobs.rules(), called_ae=called))
