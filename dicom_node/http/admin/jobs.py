"""Jobs: list, show (its outputs, delivery attempts and their responses in pages),
retry, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_node.http.admin.common import (
    ATTEMPT_RESPONSES,
    JOB_ATTEMPTS,
    JOB_OUTPUTS,
    JOBS,
    PROBLEM,
    JobId,
    Paging,
    router,
    set_total,
    total_header,
)
from dicom_node.http.app import authorize, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import AttemptOut, JobDetail, JobOut, OutputOut, ResponseOut
from dicom_node.jobs.models import (
    STAGE_TIMES,
    DeliveryAttempt,
    DeliveryResponse,
    Job,
    JobOutput,
    JobState,
)
from dicom_node.jobs.queue import JobQueue


def job_fields(j: Job) -> dict[str, Any]:
    """A job as :class:`JobOut` shows it."""
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


def output_out(o: JobOutput) -> OutputOut:
    return OutputOut(
        kind=o.kind, sop_class_uid=o.sop_class_uid, sop_instance_uid=o.sop_instance_uid
    )


def count(s: Session, stmt: Any) -> int:
    """The rows ``stmt`` selects, all pages together."""
    return s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


@router.get("/jobs", response_model=list[JobOut], responses=total_header("jobs"), tags=["jobs"])
def list_jobs(
    request: Request,
    response: Response,
    state: list[JobState] = Query([]),
    limit: int = JOBS.limit("jobs"),
    offset: int = Paging.offset("jobs"),
) -> list[JobOut]:
    """Jobs, newest first; ``state`` (repeatable) narrows them."""
    authorize(request, "read")
    stmt = select(Job).order_by(Job.id.desc())
    if state:
        stmt = stmt.where(Job.state.in_([s.value for s in state]))
    with node_of(request).db.session() as s:
        set_total(response, count(s, stmt))
        return [JobOut(**job_fields(j)) for j in s.scalars(stmt.limit(limit).offset(offset))]


def _responses(
    s: Session, attempt_ids: list[int], limit: int, offset: int
) -> tuple[dict[int, int], dict[int, list[ResponseOut]]]:
    """Attempt id -> how many responses it has, and the page of them asked for."""
    if not attempt_ids:
        return {}, {}
    totals = dict(
        s.execute(
            select(DeliveryResponse.attempt_id, func.count())
            .where(DeliveryResponse.attempt_id.in_(attempt_ids))
            .group_by(DeliveryResponse.attempt_id)
        ).all()
    )
    pages: dict[int, list[ResponseOut]] = {}
    for attempt_id in attempt_ids:  # at most JOB_ATTEMPTS.maximum seeks of the index
        rows = s.scalars(
            select(DeliveryResponse)
            .where(DeliveryResponse.attempt_id == attempt_id)
            .order_by(DeliveryResponse.id)
            .limit(limit)
            .offset(offset)
        )
        pages[attempt_id] = [
            ResponseOut(
                sop_instance_uid=r.sop_instance_uid,
                outcome=r.outcome,
                code=r.code,
                warning=r.warning,
                error=r.error,
            )
            for r in rows
        ]
    return totals, pages


@router.get("/jobs/{job_id}", response_model=JobDetail, responses={404: PROBLEM}, tags=["jobs"])
def show_job(
    request: Request,
    job_id: int = JobId,
    outputs_limit: int = JOB_OUTPUTS.limit("outputs"),
    outputs_offset: int = Paging.offset("outputs"),
    delivery_attempts_limit: int = JOB_ATTEMPTS.limit("delivery attempts"),
    delivery_attempts_offset: int = Paging.offset("delivery attempts"),
    responses_limit: int = ATTEMPT_RESPONSES.limit("responses of each delivery attempt"),
    responses_offset: int = Paging.offset("responses of each delivery attempt"),
) -> JobDetail:
    """One job: its stage timestamps, a page of its outputs and one of its delivery
    attempts (oldest first), each with a page of its responses. ``outputs_total``,
    ``delivery_attempts_total`` and each attempt's ``responses_total`` count them all."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise Problem(404, "Not Found", f"no job {job_id}")
        outputs = select(JobOutput).where(JobOutput.job_id == job_id).order_by(JobOutput.id)
        attempts = (
            select(DeliveryAttempt)
            .where(DeliveryAttempt.job_id == job_id)
            .order_by(DeliveryAttempt.id)
        )
        shown = s.scalars(
            attempts.limit(delivery_attempts_limit).offset(delivery_attempts_offset)
        ).all()
        totals, responses = _responses(s, [a.id for a in shown], responses_limit, responses_offset)
        return JobDetail(
            **job_fields(job),
            stages={k.removesuffix("_at"): getattr(job, k) for k in STAGE_TIMES},
            next_attempt_at=job.next_attempt_at,
            outputs=[
                output_out(o)
                for o in s.scalars(outputs.limit(outputs_limit).offset(outputs_offset))
            ],
            outputs_total=count(s, outputs),
            outputs_offset=outputs_offset,
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
                    responses=responses[a.id],
                    responses_total=totals.get(a.id, 0),
                    responses_offset=responses_offset,
                )
                for a in shown
            ],
            delivery_attempts_total=count(s, attempts),
            delivery_attempts_offset=delivery_attempts_offset,
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
