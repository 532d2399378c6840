"""The inference result the writers consume.

Mirrors ``ai.types`` field for field (the packages may not import each other);
``dicom_node`` converts one into the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Code:
    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str
    manufacturer: str
    device_uid: str
    intended_use: str
    demo: bool


@dataclass(frozen=True)
class LabelResult:
    name: str
    code: Code | None
    probability: float
    threshold: float
    positive: bool
    heatmap: np.ndarray | None = None  # float32 [0,1] over the source's field of view


@dataclass(frozen=True)
class ImageResult:
    sop_instance_uid: str
    frame: int | None
    model: ModelIdentity
    labels: tuple[LabelResult, ...]
