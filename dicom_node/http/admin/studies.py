"""Studies and groups, jobs: list, show, retry, cancel, reprocess."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from sqlalchemy import func, select

from dicom_node.http.admin.common import PROBLEM, JobId, Limit, router
from dicom_node.http.app import authorize, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import (
    AttemptOut,
    GroupOut,
    InstanceOut,
    JobDetail,
    JobOut,
    OutputOut,
    ReprocessOut,
    ResponseOut,
    StudyDetail,
)
from dicom_node.index import queries
from dicom_node.index.tables import Group, GroupState, Instance
from dicom_node.jobs.models import STAGE_TIMES, DeliveryAttempt, Job, JobOutput, JobState
from dicom_node.jobs.queue import JobQueue
from dicom_node.jobs.reprocess import ReprocessError, reprocess_study

# A study's instances come in pages: one of thousands of instances would otherwise be a
# response of megabytes built in memory at once.
INSTANCES_DEFAULT = 500
INSTANCES_MAX = 2000
InstancesLimit = Query(
    INSTANCES_DEFAULT, ge=1, le=INSTANCES_MAX, description="instances in this page"
)
InstancesOffset = Query(0, ge=0, le=2**31 - 1, description="instances before this page")


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


def _output(o: JobOutput) -> OutputOut:
    return OutputOut(
        kind=o.kind, sop_class_uid=o.sop_class_uid, sop_instance_uid=o.sop_instance_uid
    )


@router.get("/studies", response_model=list[GroupOut], tags=["studies"])
def list_studies(
    request: Request, state: GroupState | None = None, limit: int = Limit
) -> list[GroupOut]:
    """Received study/series groups, newest first, with how routing went."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        return [_group(g) for g in queries.list_groups(s, state, limit)]


@router.get(
    "/studies/{study}", response_model=StudyDetail, responses={404: PROBLEM}, tags=["studies"]
)
def show_study(
    request: Request,
    study: str,
    limit: int = InstancesLimit,
    offset: int = InstancesOffset,
) -> StudyDetail:
    """One study: its groups, a page of its received instances (``limit`` from
    ``offset``, in series and instance number order; ``instances_total`` counts them
    all), its jobs and the results they wrote."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        groups = s.scalars(select(Group).where(Group.study_uid == study).order_by(Group.id)).all()
        if not groups:
            raise Problem(404, "Not Found", f"no study {study}")
        total = s.scalar(
            select(func.count()).select_from(Instance).where(Instance.study_uid == study)
        )
        instances = s.scalars(
            select(Instance)
            .where(Instance.study_uid == study)
            .order_by(Instance.series_uid, Instance.instance_number, Instance.id)
            .limit(limit)
            .offset(offset)
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
            instances_total=total or 0,
            instances_offset=offset,
            jobs=[JobOut(**_job(j)) for j in jobs],
            results=[_output(o) for o in outputs],
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
    request: Request, state: list[JobState] = Query([]), limit: int = Limit
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
            stages={k.removesuffix("_at"): getattr(job, k) for k in STAGE_TIMES},
            next_attempt_at=job.next_attempt_at,
            outputs=[_output(o) for o in outputs],
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
