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
    responses: list[ResponseOut]


class JobDetail(JobOut):
    stages: dict[str, dt.datetime | None]
    next_attempt_at: dt.datetime | None
    outputs: list[OutputOut]
    delivery_attempts: list[AttemptOut]


class ModelOut(BaseModel):
    name: str
    version: str
    provider: str
    demo: bool
    status: str


class ConfigCheck(BaseModel):
    valid: bool
    errors: list[str]


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
    groups: list[GroupOut]
    instances: list[InstanceOut] = Field(
        description="one page of the study's instances (query parameters limit, offset)"
    )
    instances_total: int = Field(description="the study's instances, all pages together")
    instances_offset: int = Field(description="instances before this page")
    jobs: list[JobOut]
    results: list[OutputOut]


class ReprocessOut(BaseModel):
    source_group: int
    group_id: int
    state: str
    note: str
    job_ids: list[int]
