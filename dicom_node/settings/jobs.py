"""``jobs:`` and ``results:`` sections: how jobs run and retry, what results look like."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dicom_node import __version__
from dicom_node.delivery.retry import RetryPolicy
from sr_writer import WriteOptions
from sr_writer.options import MAX_OUTPUT_SIZE, MIN_OUTPUT_SIZE


class RetentionSettings(BaseModel):
    """What the scheduled clean-up deletes. ``None`` keeps forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instances_days: float | None = Field(
        30, gt=0, description="Delete received instances older than this (never a pending "
        "job's inputs).")
    jobs_days: float | None = Field(
        90, gt=0, description="Delete finished jobs (done, dead, cancelled) and their "
        "written results older than this.")
    interval_minutes: float = Field(60, gt=0, description="How often the clean-up runs.")


class JobsSettings(BaseModel):
    """The embedded executor and the retry policy of every job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(2, ge=1, le=64, description="Worker threads in `serve`.")
    lease_seconds: float = Field(
        120, gt=0, description="A running job whose worker has not reported for this long "
        "is queued again (its worker died).")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


class ResultsSettings(BaseModel):
    """What the SR and the Secondary Capture images contain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sr_labels: Literal["all", "positive"] = Field(
        "all", description="All labels in the SR, or only positive findings plus a "
        "'no finding above threshold' statement.")
    heatmaps: Literal["top", "positive", "none"] = Field(
        "positive", description="One heatmap SC per positive finding (most probable "
        "first, up to max_heatmaps_per_image), one of each image's top finding, or none.")
    max_heatmaps_per_image: int | None = Field(
        3, ge=1, description="With heatmaps 'positive': at most this many per image; "
        "null: no cap.")
    max_heatmap_images: int | None = Field(
        None, ge=1, description="For series (CT/MR): heatmaps only on the N images whose "
        "top probability is highest (key slices); null: every image.")
    heatmap_floor: float = Field(
        0.5, ge=0.0, lt=1.0, description="Heatmap values below this are left untinted, so "
        "the anatomy stays readable.")
    findings_card: bool = Field(True, description="Also write the summary 'findings card' SC.")
    caution: str | None = Field(
        None, description="Burned-in caution line; default for demo models: 'AI result — "
        "not for diagnostic use' (demo results also say 'NON-CLINICAL DEMO — untrained "
        "weights' whatever this is).")
    max_output_size: int = Field(1024, ge=MIN_OUTPUT_SIZE, le=MAX_OUTPUT_SIZE,
                                 description="Longest side of a written SC, in pixels.")
    institution_name: str | None = None
    kos: bool = Field(True, description="Also write a Key Object Selection document "
                      "flagging the images with positive findings (PACS show them as key "
                      "images); only when there are positive findings.")
    parametric_map: bool = Field(
        False, description="Also write a Parametric Map of each positive finding's heatmap "
        "over its source image (OHIF overlays it); CT/MR-like images with a Frame of "
        "Reference only.")

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
