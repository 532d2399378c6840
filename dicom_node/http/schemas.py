"""The admin API's response bodies (they make its OpenAPI document)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class GroupOut(BaseModel):
    id: int
    state: str
    study_uid: str
    series_uid: str | None
    patient_id: str | None
    modalities: list[str]
    instances: int
    called_ae: str
    calling_ae: str
    first_received: dt.datetime
    last_received: dt.datetime
    route_note: str | None


class JobOut(BaseModel):
    id: int
    group_id: int
    study_uid: str
    rule: str
    action: str
    state: str
    attempts: int
    models: list[str]
    destinations: list[str]
    error: str | None
    created_at: dt.datetime


class OutputOut(BaseModel):
    kind: str
    sop_class_uid: str
    sop_instance_uid: str


class ResponseOut(BaseModel):
    sop_instance_uid: str
    outcome: str
    code: int | None
    warning: bool
    error: str | None


class AttemptOut(BaseModel):
    destination: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str
    planned: int
    sent: int
    accepted: int
    error: str | None
    responses: list[ResponseOut] = Field(
        description="one page of the attempt's responses (responses_limit, responses_offset)"
    )
    responses_total: int = Field(description="the attempt's responses, all pages together")
    responses_offset: int = Field(description="responses before this page")


class JobDetail(JobOut):
    stages: dict[str, dt.datetime | None]
    next_attempt_at: dt.datetime | None
    outputs: list[OutputOut] = Field(
        description="one page of the job's outputs (outputs_limit, outputs_offset)"
    )
    outputs_total: int = Field(description="the job's outputs, all pages together")
    outputs_offset: int = Field(description="outputs before this page")
    delivery_attempts: list[AttemptOut] = Field(
        description="one page of the job's delivery attempts, oldest first "
        "(delivery_attempts_limit, delivery_attempts_offset)"
    )
    delivery_attempts_total: int = Field(description="the job's attempts, all pages together")
    delivery_attempts_offset: int = Field(description="attempts before this page")


class ModelOut(BaseModel):
    name: str
    version: str
    provider: str
    demo: bool
    status: str


class ConfigCheck(BaseModel):
    valid: bool
    errors: list[str]


class ReloadOut(BaseModel):
    restart_required: list[str] = Field(
        description="changed settings that keep their running value until a restart"
    )
    warnings: list[str]


class DestinationOut(BaseModel):
    name: str
    kind: str
    target: str


class EchoOut(BaseModel):
    destination: str
    ok: bool
    status: int | None
    detail: str


class InstanceOut(BaseModel):
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    modality: str | None
    instance_number: int | None
    size: int
    received_at: dt.datetime


class StudyDetail(BaseModel):
    study_uid: str
    groups: list[GroupOut] = Field(
        description="one page of the study's groups, oldest first (groups_limit, groups_offset)"
    )
    groups_total: int = Field(description="the study's groups, all pages together")
    groups_offset: int = Field(description="groups before this page")
    instances: list[InstanceOut] = Field(
        description="one page of the study's instances (query parameters limit, offset)"
    )
    instances_total: int = Field(description="the study's instances, all pages together")
    instances_offset: int = Field(description="instances before this page")
    jobs: list[JobOut] = Field(
        description="one page of the study's jobs, oldest first (jobs_limit, jobs_offset)"
    )
    jobs_total: int = Field(description="the study's jobs, all pages together")
    jobs_offset: int = Field(description="jobs before this page")
    results: list[OutputOut] = Field(
        description="one page of the results its jobs wrote (results_limit, results_offset)"
    )
    results_total: int = Field(description="the study's results, all pages together")
    results_offset: int = Field(description="results before this page")


class ReprocessOut(BaseModel):
    source_group: int
    group_id: int
    state: str
    note: str
    job_ids: list[int]
