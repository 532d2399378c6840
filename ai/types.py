"""Typed results the runtime returns. ``sr_writer.inputs`` mirrors these field for field."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Code:
    """A coded concept, e.g. ``Code("36118008", "SCT", "Pneumothorax")``."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class ModelIdentity:
    """Who produced a result: flows into the SR's device observer and the heatmaps."""

    name: str
    version: str
    manufacturer: str
    device_uid: str  # changes whenever the weights change
    intended_use: str
    demo: bool  # True for non-clinical demo models (untrained weights)


@dataclass(frozen=True)
class LabelResult:
    """One label's output for one image."""

    name: str
    code: Code | None
    probability: float  # 0..1 after the manifest's activation
    threshold: float
    positive: bool  # probability >= threshold
    # Class activation map, float32 in [0, 1], covering exactly the source image's
    # field of view (padding removed), at model resolution; None if the model has none.
    heatmap: np.ndarray | None = None


@dataclass(frozen=True)
class ImageResult:
    """All labels of one model for one source image (one frame of it)."""

    sop_instance_uid: str
    frame: int | None  # 1-based frame number for multi-frame sources, else None
    model: ModelIdentity
    labels: tuple[LabelResult, ...]
