"""Studies and groups: list, show (its groups, instances, jobs and results in pages),
reprocess."""

from __future__ import annotations

from fastapi import Query, Request, Response
from sqlalchemy import select

from dicom_node.http.admin.common import (
    PROBLEM,
    STUDIES,
    STUDY_GROUPS,
    STUDY_JOBS,
    STUDY_RESULTS,
    Paging,
    router,
    set_total,
    total_header,
)
from dicom_node.http.admin.jobs import count, job_fields, output_out
from dicom_node.http.app import authorize, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import (
    GroupOut,
    InstanceOut,
    JobOut,
    ReprocessOut,
    StudyDetail,
)
from dicom_node.index import queries
from dicom_node.index.tables import Group, GroupState, Instance
from dicom_node.jobs.models import Job, JobOutput
from dicom_node.jobs.reprocess import ReprocessError, reprocess_study

# A study's instances come in pages: one of thousands of instances would otherwise be a
# response of megabytes built in memory at once.
INSTANCES_DEFAULT = 500
INSTANCES_MAX = 2000
InstancesLimit = Query(
    INSTANCES_DEFAULT, ge=1, le=INSTANCES_MAX, description="instances in this page"
)
InstancesOffset = Paging.offset("instances")


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


@router.get(
    "/studies",
    response_model=list[GroupOut],
    responses=total_header("groups"),
    tags=["studies"],
)
def list_studies(
    request: Request,
    response: Response,
    state: GroupState | None = None,
    limit: int = STUDIES.limit("groups"),
    offset: int = Paging.offset("groups"),
) -> list[GroupOut]:
    """Received study/series groups, newest first, with how routing went."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        stmt = queries.groups(state)
        set_total(response, count(s, stmt))
        return [_group(g) for g in s.scalars(stmt.limit(limit).offset(offset))]


@router.get(
    "/studies/{study}", response_model=StudyDetail, responses={404: PROBLEM}, tags=["studies"]
)
def show_study(
    request: Request,
    study: str,
    limit: int = InstancesLimit,
    offset: int = InstancesOffset,
    groups_limit: int = STUDY_GROUPS.limit("groups"),
    groups_offset: int = Paging.offset("groups"),
    jobs_limit: int = STUDY_JOBS.limit("jobs"),
    jobs_offset: int = Paging.offset("jobs"),
    results_limit: int = STUDY_RESULTS.limit("results"),
    results_offset: int = Paging.offset("results"),
) -> StudyDetail:
    """One study: a page of its groups, a page of its received instances (``limit``
    from ``offset``, in series and instance number order), a page of its jobs and one of
    the results they wrote. ``groups_total``, ``instances_total``, ``jobs_total`` and
    ``results_total`` count them all."""
    authorize(request, "read")
    with node_of(request).db.session() as s:
        groups = select(Group).where(Group.study_uid == study).order_by(Group.id)
        groups_total = count(s, groups)
        if not groups_total:
            raise Problem(404, "Not Found", f"no study {study}")
        instances = (
            select(Instance)
            .where(Instance.study_uid == study)
            .order_by(Instance.series_uid, Instance.instance_number, Instance.id)
        )
        jobs = select(Job).where(Job.study_uid == study).order_by(Job.id)
        outputs = (
            select(JobOutput)
            .join(Job, Job.id == JobOutput.job_id)
            .where(Job.study_uid == study)
            .order_by(JobOutput.id)
        )
        return StudyDetail(
            study_uid=study,
            groups=[_group(g) for g in s.scalars(groups.limit(groups_limit).offset(groups_offset))],
            groups_total=groups_total,
            groups_offset=groups_offset,
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
                for i in s.scalars(instances.limit(limit).offset(offset))
            ],
            instances_total=count(s, instances),
            instances_offset=offset,
            jobs=[
                JobOut(**job_fields(j))
                for j in s.scalars(jobs.limit(jobs_limit).offset(jobs_offset))
            ],
            jobs_total=count(s, jobs),
            jobs_offset=jobs_offset,
            results=[
                output_out(o)
                for o in s.scalars(outputs.limit(results_limit).offset(results_offset))
            ],
            results_total=count(s, outputs),
            results_offset=results_offset,
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
