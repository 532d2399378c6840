"""The admin REST API under ``/api`` (JSON; OpenAPI at ``/api/openapi.json``).

Studies and groups, jobs (list, show, retry, cancel), models, route explanations,
configuration check and reload, destinations with a C-ECHO test. Each route reuses what
the CLI runs (``index.queries``, ``JobQueue``, ``routing.explain``, the configuration
loader); errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import os
import pathlib
import signal
import uuid
from typing import Any

import yaml
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dicom_node.http.app import authorize, body_chunks, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import (
    AttemptOut,
    ConfigCheck,
    DestinationOut,
    EchoOut,
    GroupOut,
    InstanceOut,
    JobDetail,
    JobOut,
    ModelOut,
    OutputOut,
    ReprocessOut,
    ResponseOut,
    StudyDetail,
)
from dicom_node.index import queries
from dicom_node.index.tables import Group, Instance
from dicom_node.jobs.destination_status import (
    DestinationStatus,
    destination_status,
    known_destinations,
)
from dicom_node.jobs.models import DeliveryAttempt, Job, JobOutput, JobState
from dicom_node.jobs.queue import JobQueue
from dicom_node.jobs.reprocess import ReprocessError, reprocess_study
from dicom_node.routing.explain import explain_path, explanation_to_dict
from dicom_node.settings.root import ConfigError, validate_config
from dicom_node.store.writer import safe_component


def _token(request: Request) -> None:
    """Any valid token, checked before the parameters are (401 comes before 422); each
    route then asks for its role."""
    authorize(request, "read")


router = APIRouter(prefix="/api", dependencies=[Depends(_token)])
PROBLEM = {"content": {"application/problem+json": {}}}
JobId = Path(ge=1, le=2**63 - 1, description="a job's id")
STAGES = (
    "received_at",
    "complete_at",
    "created_at",
    "started_at",
    "inferred_at",
    "written_at",
    "delivered_at",
    "finished_at",
)


def _group(g: Group) -> GroupOut:
    return GroupOut(
        id=g.id,
        state=g.state,
        study_uid=g.study_uid,
        series_uid=g.series_uid,
        patient_id=g.patient_id,
        modalities=[m for m in g.modalities.split("\\") if m],
        instances=g.instance_count,
        called_ae=g.called_ae,
        calling_ae=g.calling_ae,
        first_received=g.first_received,
        last_received=g.last_received,
        route_note=g.route_note,
    )


def _job(j: Job) -> dict[str, Any]:
    return dict(
        id=j.id,
        group_id=j.group_id,
        study_uid=j.study_uid,
        rule=j.rule_name,
        action=j.action,
        state=j.state,
        attempts=j.attempts,
        models=list(j.models),
        destinations=list(j.destinations),
        error=j.error,
        created_at=j.created_at,
    )


@router.get("/studies", response_model=list[GroupOut], tags=["studies"])
def list_studies(
    request: Request, state: str | None = None, limit: int = Query(50, ge=1, le=1000)
) -> list[GroupOut]:
    """Received study/series groups, newest first, with how routing went."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        return [_group(g) for g in queries.list_groups(s, state, limit)]


@router.get(
    "/studies/{study}", response_model=StudyDetail, responses={404: PROBLEM}, tags=["studies"]
)
def show_study(request: Request, study: str) -> StudyDetail:
    """One study: its groups, received instances, jobs and the results they wrote."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        groups = s.scalars(select(Group).where(Group.study_uid == study).order_by(Group.id)).all()
        if not groups:
            raise Problem(404, "Not Found", f"no study {study}")
        instances = s.scalars(
            select(Instance)
            .where(Instance.study_uid == study)
            .order_by(Instance.series_uid, Instance.instance_number)
        ).all()
        jobs = s.scalars(select(Job).where(Job.study_uid == study).order_by(Job.id)).all()
        outputs = s.scalars(
            select(JobOutput)
            .join(Job, Job.id == JobOutput.job_id)
            .where(Job.study_uid == study)
            .order_by(JobOutput.id)
        ).all()
        return StudyDetail(
            study_uid=study,
            groups=[_group(g) for g in groups],
            instances=[
                InstanceOut(
                    sop_instance_uid=i.sop_instance_uid,
                    sop_class_uid=i.sop_class_uid,
                    series_uid=i.series_uid,
                    modality=i.modality,
                    instance_number=i.instance_number,
                    size=i.size,
                    received_at=i.received_at,
                )
                for i in instances
            ],
            jobs=[JobOut(**_job(j)) for j in jobs],
            results=[
                OutputOut(
                    kind=o.kind, sop_class_uid=o.sop_class_uid, sop_instance_uid=o.sop_instance_uid
                )
                for o in outputs
            ],
        )


@router.post(
    "/studies/{study}/reprocess",
    status_code=202,
    response_model=list[ReprocessOut],
    responses={409: PROBLEM},
    tags=["studies"],
)
def reprocess(request: Request, study: str) -> list[ReprocessOut]:
    """Route a stored study again under the running configuration and queue new jobs
    (results keep their UIDs and replace the earlier ones), as ``studies reprocess``."""
    authorize(request, "admin")
    try:
        done = reprocess_study(node_of(request).jobs.router, study)
    except ReprocessError as err:
        raise Problem(409, "Conflict", str(err)) from None
    return [
        ReprocessOut(
            source_group=r.source_group,
            group_id=r.group_id,
            state=r.state,
            note=r.note,
            job_ids=list(r.job_ids),
        )
        for r in done
    ]


@router.get("/jobs", response_model=list[JobOut], tags=["jobs"])
def list_jobs(
    request: Request, state: list[JobState] = Query([]), limit: int = Query(50, ge=1, le=1000)
) -> list[JobOut]:
    """Jobs, newest first; ``state`` (repeatable) narrows them."""
    authorize(request, "read")
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(Job.state.in_([s.value for s in state]))
    with node_of(request).db.session() as s:
        return [JobOut(**_job(j)) for j in s.scalars(stmt)]


@router.get("/jobs/{job_id}", response_model=JobDetail, responses={404: PROBLEM}, tags=["jobs"])
def show_job(request: Request, job_id: int = JobId) -> JobDetail:
    """One job: its stage timestamps, outputs and every delivery attempt."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise Problem(404, "Not Found", f"no job {job_id}")
        outputs = s.scalars(select(JobOutput).where(JobOutput.job_id == job_id)).all()
        attempts = s.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.job_id == job_id)
            .order_by(DeliveryAttempt.id)
        ).all()
        return JobDetail(
            **_job(job),
            stages={k.removesuffix("_at"): getattr(job, k) for k in STAGES},
            next_attempt_at=job.next_attempt_at,
            outputs=[
                OutputOut(
                    kind=o.kind, sop_class_uid=o.sop_class_uid, sop_instance_uid=o.sop_instance_uid
                )
                for o in outputs
            ],
            delivery_attempts=[
                AttemptOut(
                    destination=a.destination,
                    started_at=a.started_at,
                    finished_at=a.finished_at,
                    outcome=a.outcome,
                    planned=a.planned,
                    sent=a.sent,
                    accepted=a.accepted,
                    error=a.error,
                    responses=[
                        ResponseOut(
                            sop_instance_uid=r.sop_instance_uid,
                            outcome=r.outcome,
                            code=r.code,
                            warning=r.warning,
                            error=r.error,
                        )
                        for r in a.responses
                    ],
                )
                for a in attempts
            ],
        )


@router.post("/jobs/{job_id}/retry", status_code=202, responses={409: PROBLEM}, tags=["jobs"])
def retry_job(request: Request, job_id: int = JobId) -> dict[str, Any]:
    """Queue a dead, failed or cancelled job again (attempts start over)."""
    authorize(request, "admin")
    node = node_of(request)
    if not JobQueue(node.db).retry(job_id):
        raise Problem(409, "Conflict", f"job {job_id} is not dead, failed or cancelled")
    node.jobs.executor.wake()
    return {"job": job_id, "state": JobState.QUEUED.value}


@router.post("/jobs/{job_id}/cancel", status_code=202, responses={409: PROBLEM}, tags=["jobs"])
def cancel_job(request: Request, job_id: int = JobId) -> dict[str, Any]:
    """Cancel a job that has not finished; a worker holding it stops before delivering."""
    authorize(request, "admin")
    if not JobQueue(node_of(request).db).cancel(job_id):
        raise Problem(409, "Conflict", f"job {job_id} has already finished or does not exist")
    return {"job": job_id, "state": JobState.CANCELLED.value}


@router.get("/models", response_model=list[ModelOut], tags=["models"])
def list_models(request: Request) -> list[ModelOut]:
    """Loaded models (with their execution provider) and refused packages."""
    authorize(request, "read")
    registry = node_of(request).jobs.registry
    out = [
        ModelOut(
            name=name,
            version=m.identity.version,
            provider=m.provider,
            demo=m.identity.demo,
            status="loaded",
        )
        for name, m in sorted(registry.models.items())
    ]
    out += [
        ModelOut(
            name=str(e.path), version="", provider="", demo=False, status=f"refused: {e.message}"
        )
        for e in registry.errors
    ]
    return out


_BINARY = {"schema": {"type": "string", "format": "binary"}}
DICOM_BODY = {
    "content": {"application/dicom": _BINARY, "application/octet-stream": _BINARY},
    "required": True,
}


async def _uploaded(request: Request) -> pathlib.Path:
    """The request body (one PS3.10 file) spooled to a file in ``incoming/``, up to
    ``http.max_upload_mb``; the caller removes it. Problem 400 unless it reads as DICOM."""
    node = node_of(request)
    limit = node.config.http.max_upload_mb * 2**20
    path = node.store.incoming / f"{uuid.uuid4().hex}.upload"
    size = 0
    try:
        with open(path, "wb") as fh:
            async for chunk in body_chunks(request, limit, "uploads (http.max_upload_mb)"):
                fh.write(chunk)
                size += len(chunk)
        if not size:
            raise Problem(400, "Bad Request", "send one DICOM file as the request body")
        await run_in_threadpool(_check_dicom, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _check_dicom(path: pathlib.Path) -> None:
    import pydicom

    try:
        pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # noqa: BLE001 - pydicom may raise anything on arbitrary bytes
        raise Problem(400, "Bad Request", f"the upload is not a DICOM file: {err}") from None


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
    applies, reason = model.applies_to(ds)
    try:
        results = model.infer(ds)
    except (DecodeError, PreprocessError) as err:
        raise Problem(422, "Unprocessable Content", str(err)) from None
    return {
        **results_document(model, results),
        "applies": applies,
        "not_applicable_because": None if applies else reason,
    }


@router.post(
    "/models/{name}/test",
    openapi_extra={"requestBody": DICOM_BODY},
    responses={400: PROBLEM, 404: PROBLEM, 422: PROBLEM},
    tags=["models"],
)
async def test_model(request: Request, name: str) -> dict[str, Any]:
    """Run one uploaded DICOM image through a loaded model: every label's probability and
    decision (nothing is stored or sent), as ``models test --json``."""
    authorize(request, "admin")
    path = await _uploaded(request)
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
    path = await _uploaded(request)

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


MAX_YAML_NODES = 100_000  # values a posted configuration may expand to (aliases included)
YAML_BODY = {
    "content": {"application/yaml": {"schema": {"type": "string"}}},
    "required": True,
}


def _yaml_nodes(value: Any, budget: list[int]) -> None:
    """Count the values of a loaded document as a validator walks it (an alias is walked
    each time it is used); ValueError once past :data:`MAX_YAML_NODES`."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(
            f"more than {MAX_YAML_NODES} values once aliases are expanded (an alias bomb?)"
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _yaml_nodes(k, budget)
            _yaml_nodes(v, budget)
    elif isinstance(value, list):
        for v in value:
            _yaml_nodes(v, budget)


@router.post(
    "/config/check",
    response_model=ConfigCheck,
    openapi_extra={"requestBody": YAML_BODY},
    responses={400: PROBLEM, 413: PROBLEM},
    tags=["configuration"],
)
async def check_config(request: Request) -> ConfigCheck:
    """Validate a posted YAML configuration (at most ``http.max_config_kb``): every
    error with its path."""
    authorize(request, "read")
    limit = node_of(request).config.http.max_config_kb * 1024
    data = bytearray()
    async for chunk in body_chunks(request, limit, "a posted configuration (http.max_config_kb)"):
        data += chunk
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Problem(400, "Bad Request", f"the configuration is not UTF-8 text: {err}") from None
    return await run_in_threadpool(_check_yaml, text)


def _check_yaml(text: str) -> ConfigCheck:
    try:
        document = yaml.safe_load(text)  # safe: no Python tags, no object construction
        _yaml_nodes(document, [MAX_YAML_NODES])
        validate_config(document, "posted configuration")
    except yaml.YAMLError as err:
        return ConfigCheck(valid=False, errors=[f"YAML syntax error: {err}"])
    except ValueError as err:
        return ConfigCheck(valid=False, errors=[str(err)])
    except ConfigError as err:
        return ConfigCheck(valid=False, errors=err.errors)
    return ConfigCheck(valid=True, errors=[])


@router.post("/config/reload", status_code=202, tags=["configuration"])
def reload_config(request: Request) -> dict[str, str]:
    """Re-read the configuration file, as SIGHUP does (a bad file is refused and logged)."""
    authorize(request, "admin")
    os.kill(os.getpid(), signal.SIGHUP)
    return {"status": "reload requested; the node's log tells the outcome"}


@router.get("/destinations", response_model=list[DestinationOut], tags=["destinations"])
def list_destinations(request: Request) -> list[DestinationOut]:
    """Configured result destinations (credentials never shown)."""
    authorize(request, "read")
    out = []
    for d in node_of(request).config.destinations:
        target = f"{d.ae_title}@{d.host}:{d.port}" if d.kind == "dimse" else getattr(d, "url", "")
        out.append(DestinationOut(name=d.name, kind=d.kind, target=target))
    return out


def _statuses(request: Request, name: str | None = None) -> list[DestinationStatus]:
    node = node_of(request)
    configured = [d.name for d in node.config.destinations]
    names = [*configured, *known_destinations(node.db)] if name is None else [name]
    return destination_status(node.db, names, configured=configured)


@router.get("/destinations/status", response_model=list[DestinationStatus], tags=["destinations"])
def destinations_status(request: Request) -> list[DestinationStatus]:
    """What happened at each destination (configured, or named by a delivery on record):
    last attempt, attempts in the last 24 h, pending deliveries, last error."""
    authorize(request, "read")
    return _statuses(request)


@router.get(
    "/destinations/{name}/status",
    response_model=DestinationStatus,
    responses={404: PROBLEM},
    tags=["destinations"],
)
def destination_status_one(request: Request, name: str) -> DestinationStatus:
    """What happened at one destination: last attempt, attempts in the last 24 h,
    pending deliveries, last error."""
    authorize(request, "read")
    status = _statuses(request, name)[0]
    if not status.configured and status.last_attempt is None and not status.pending_jobs:
        raise Problem(404, "Not Found", f"no destination {name!r}, and no delivery to one")
    return status


def _echo(dest: Any) -> EchoOut:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=dest.calling_ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 10
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        return EchoOut(
            destination=dest.name,
            ok=False,
            status=None,
            detail="association rejected, aborted or never connected",
        )
    try:
        rsp = assoc.send_c_echo()
    finally:
        assoc.release()
    status = int(rsp.Status) if "Status" in rsp else None
    return EchoOut(
        destination=dest.name,
        ok=status == 0,
        status=status,
        detail="C-ECHO answered" if status is not None else "no C-ECHO response",
    )


@router.post(
    "/destinations/{name}/echo",
    response_model=EchoOut,
    responses={404: PROBLEM, 400: PROBLEM},
    tags=["destinations"],
)
async def echo_destination(request: Request, name: str) -> EchoOut:
    """C-ECHO a DIMSE destination."""
    authorize(request, "admin")
    dest = next((d for d in node_of(request).config.destinations if d.name == name), None)
    if dest is None:
        raise Problem(404, "Not Found", f"no destination {name!r}")
    if dest.kind != "dimse":
        raise Problem(400, "Bad Request", f"destination {name!r} is {dest.kind}, not DIMSE")
    return await run_in_threadpool(_echo, dest)


def register(app: FastAPI) -> None:
    """Add the admin API to ``app``."""
    app.include_router(router)
