"""Typed results the runtime returns. ``sr_writer.inputs`` mirrors these field for field."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Code:
    """A coded concept, e.g. ``Code("36118008", "SCT", "Pneumothorax")``.

    Attributes
    ----------
    value : str
        Code Value.
    scheme : str
        Coding Scheme Designator (``"SCT"``, ``"DCM"``, a private ``"99..."`` one).
    meaning : str
        Code Meaning.
    """

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class ModelIdentity:
    """Who produced a result: flows into the SR's device observer and the heatmaps.

    Attributes
    ----------
    name, version, manufacturer : str
        From the model's manifest.
    device_uid : str
        Device Observer UID; changes whenever the weights change.
    intended_use : str
        What the model is for.
    demo : bool
        True for non-clinical demo models (untrained weights).
    """

    name: str
    version: str
    manufacturer: str
    device_uid: str
    intended_use: str
    demo: bool


@dataclass(frozen=True)
class LabelResult:
    """One label's output for one image.

    Attributes
    ----------
    name : str
        The label's name in the manifest.
    code : Code or None
        Its finding type; ``None`` when the manifest gives none (such a result cannot
        be written as an SR).
    probability : float
        In [0, 1], after the manifest's activation.
    threshold : float
        The manifest's operating point.
    positive : bool
        ``probability >= threshold``.
    heatmap : numpy.ndarray or None
        Class activation map, float32 in [0, 1], covering exactly the source image's
        field of view (padding removed), at model resolution; ``None`` if the model
        has none.
    """

    name: str
    code: Code | None
    probability: float
    threshold: float
    positive: bool
    heatmap: np.ndarray | None = None


@dataclass(frozen=True)
class ImageResult:
    """All labels of one model for one source image (one frame of it).

    Attributes
    ----------
    sop_instance_uid : str
        The source image.
    frame : int or None
        1-based frame number for multi-frame sources, else ``None``.
    model : ModelIdentity
        The model that produced the labels.
    labels : tuple of LabelResult
        In the manifest's order.
    """

    sop_instance_uid: str
    frame: int | None
    model: ModelIdentity
    labels: tuple[LabelResult, ...]
