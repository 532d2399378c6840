"""``jobs:`` and ``results:`` sections: how jobs run and retry, what results look like."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dicom_node import __version__
from dicom_node.delivery.retry import RetryPolicy
from sr_writer import WriteOptions
from sr_writer.options import MAX_OUTPUT_SIZE, MIN_OUTPUT_SIZE


class RetentionSettings(BaseModel):
    """What the scheduled clean-up deletes. ``None`` keeps forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instances_days: float | None = Field(
        30,
        gt=0,
        description="Delete received instances older than this (never a pending job's inputs).",
    )
    jobs_days: float | None = Field(
        90,
        gt=0,
        description="Delete finished jobs (done, dead, cancelled) and their "
        "written results older than this.",
    )
    interval_minutes: float = Field(60, gt=0, description="How often the clean-up runs.")


class JobsSettings(BaseModel):
    """Who runs jobs (embedded threads or Celery workers) and the retry policy of every job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: Literal["embedded", "celery"] = Field(
        "embedded",
        description="embedded: worker threads inside `serve`; celery: "
        "`dicom-node worker` processes fed through `broker_url` (the database stays the "
        "source of truth).",
    )
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Celery broker (executor: celery)."
    )
    republish_seconds: float = Field(
        60,
        gt=0,
        description="executor: celery. A claimable job whose message was "
        "published this long ago and still unclaimed is published again (its message may "
        "have been lost with the broker); a duplicate message is harmless.",
    )
    sweep_seconds: float = Field(
        5,
        gt=0,
        description="executor: celery. How often `serve` looks for expired leases, "
        "unpublished jobs and jobs no live worker can take.",
    )
    workers: int = Field(2, ge=1, le=64, description="Worker threads in `serve`.")
    lease_seconds: float = Field(
        120,
        gt=0,
        description="A running job whose worker has not reported for this long "
        "is queued again (its worker died).",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


class ResultsSettings(BaseModel):
    """What the SR and the Secondary Capture images contain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sr_labels: Literal["all", "positive"] = Field(
        "all",
        description="All labels in the SR, or only positive findings plus a "
        "'no finding above threshold' statement.",
    )
    heatmaps: Literal["top", "positive", "none"] = Field(
        "positive",
        description="One heatmap SC per positive finding (most probable "
        "first, up to max_heatmaps_per_image), one of each image's top finding, or none.",
    )
    max_heatmaps_per_image: int | None = Field(
        3, ge=1, description="With heatmaps 'positive': at most this many per image; null: no cap."
    )
    max_heatmap_images: int | None = Field(
        None,
        ge=1,
        description="For series (CT/MR): heatmaps only on the N images whose "
        "top probability is highest (key slices); null: every image.",
    )
    heatmap_floor: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="Heatmap values below this are left untinted, so the anatomy stays readable.",
    )
    findings_card: bool = Field(True, description="Also write the summary 'findings card' SC.")
    caution: str | None = Field(
        None,
        description="Burned-in caution line; default for demo models: 'AI result — "
        "not for diagnostic use' (demo results also say 'NON-CLINICAL DEMO — untrained "
        "weights' whatever this is).",
    )
    max_output_size: int = Field(
        1024,
        ge=MIN_OUTPUT_SIZE,
        le=MAX_OUTPUT_SIZE,
        description="Longest side of a written SC, in pixels.",
    )
    institution_name: str | None = None
    kos: bool = Field(
        True,
        description="Also write a Key Object Selection document "
        "flagging the images with positive findings (PACS show them as key "
        "images); only when there are positive findings.",
    )
    parametric_map: bool = Field(
        False,
        description="Also write a Parametric Map of each positive finding's heatmap "
        "over its source image (OHIF overlays it); CT/MR-like images with a Frame of "
        "Reference only.",
    )

    def write_options(self, created_at: dt.datetime | None = None) -> WriteOptions:
        """The writer's options (with ``caution`` unset it picks the demo line for demo
        models itself); ``created_at`` dates the objects."""
        return WriteOptions(
            created_at=created_at,
            sr_labels=self.sr_labels,
            heatmaps=self.heatmaps,
            max_heatmaps_per_image=self.max_heatmaps_per_image,
            max_heatmap_images=self.max_heatmap_images,
            heatmap_floor=self.heatmap_floor,
            findings_card=self.findings_card,
            caution=self.caution,
            max_output_size=self.max_output_size,
            software_version=__version__,
            institution_name=self.institution_name,
            kos=self.kos,
            parametric_map=self.parametric_map,
        )


class WorkerSettings(BaseModel):
    """``worker:`` section: a `dicom-node worker` process (executor: celery)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, max_length=100, description="Default: worker@<host>:<pid>.")
    heartbeat_seconds: float = Field(
        5,
        gt=0,
        description="How often the worker records itself and extends its job's "
        "lease (keep well under jobs.lease_seconds).",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus /metrics on this port "
        "(0: any free port, recorded in `workers list`); None: off.",
    )
    metrics_address: str = "0.0.0.0"
    inputs: Literal["shared", "wado-rs"] = Field(
        "shared",
        description="shared: read inputs where the node stored them (its data "
        "directory mounted at the same path); wado-rs: fetch them from node_url.",
    )
    node_url: str | None = Field(
        None, description="inputs: wado-rs. The node's HTTP face, e.g. http://node:8080."
    )
    node_token: str | None = Field(
        None, description="inputs: wado-rs. A bearer token with the read role on the node."
    )

    @model_validator(mode="after")
    def _wado_needs_url(self) -> WorkerSettings:
        if self.inputs == "wado-rs" and not self.node_url:
            raise ValueError("inputs: wado-rs needs node_url (the node's HTTP face)")
        return self
