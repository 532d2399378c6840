"""The inference result the writers consume, as value objects that check themselves.

Mirrors ``ai.types`` field for field (the packages may not import each other);
``dicom_node`` converts one into the other. Each class refuses, in its constructor, a
value it could not be written with: a :class:`ValueError` (or :class:`TypeError` for a
value of the wrong kind) that names the class and the field. What needs the sources or
the other results (an unknown SOP Instance UID, a frame past the source's last) is
checked by :func:`sr_writer.validate.check_results` when writing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _require_text(obj: object, *fields: str) -> None:
    """Raise if one of ``fields`` of ``obj`` is not a non-empty string."""
    for field in fields:
        value = getattr(obj, field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{type(obj).__name__}.{field} must be a non-empty string: {value!r}")


@dataclass(frozen=True)
class Code:
    """A coded concept, e.g. ``Code("36118008", "SCT", "Pneumothorax")``.

    Parameters
    ----------
    value : str
        Code Value.
    scheme : str
        Coding Scheme Designator (``"SCT"``, ``"DCM"``, a private ``"99..."`` one).
    meaning : str
        Code Meaning.

    Raises
    ------
    ValueError
        A part is empty.
    """

    value: str
    scheme: str
    meaning: str

    def __post_init__(self) -> None:
        """Check that every part is given."""
        _require_text(self, "value", "scheme", "meaning")


@dataclass(frozen=True)
class ModelIdentity:
    """The model that produced a result: the SR's device observer and the SCs' equipment.

    Parameters
    ----------
    name, version, manufacturer : str
        The model's name, version and maker.
    device_uid : str
        Device Observer UID; changes whenever the weights change.
    intended_use : str
        What the model is for (may be empty).
    demo : bool
        True for a non-clinical demo model; its objects say so where a reader looks.

    Raises
    ------
    ValueError
        ``name``, ``version``, ``manufacturer`` or ``device_uid`` is empty.
    """

    name: str
    version: str
    manufacturer: str
    device_uid: str
    intended_use: str
    demo: bool

    def __post_init__(self) -> None:
        """Check that the model is named."""
        _require_text(self, "name", "version", "manufacturer", "device_uid")


def _check_heatmap(name: str, heatmap: object) -> None:
    """Raise ValueError if ``heatmap`` is not a 2-D map of finite values in [0, 1]."""
    where = f"LabelResult.heatmap of label {name!r}"
    hm = np.asarray(heatmap)
    if hm.ndim != 2 or min(hm.shape) < 1:
        raise ValueError(f"{where} has shape {hm.shape}; expected 2-D (rows, cols)")
    if not np.issubdtype(hm.dtype, np.floating) and not np.issubdtype(hm.dtype, np.integer):
        raise ValueError(f"{where} has dtype {hm.dtype}, not a numeric one")
    if not np.all(np.isfinite(hm)):
        raise ValueError(f"{where} contains NaN or infinity")
    low, high = float(hm.min()), float(hm.max())
    if low < 0 or high > 1:
        raise ValueError(f"{where} has values [{low}, {high}] outside [0, 1]")


@dataclass(frozen=True)
class LabelResult:
    """One label's output for one image.

    Parameters
    ----------
    name : str
        The label's name in the model's manifest (unique within an image's labels).
    code : Code
        The finding type written for it.
    probability : float
        The model's output after its activation, in [0, 1].
    threshold : float
        The operating point, in [0, 1].
    positive : bool
        ``probability >= threshold``.
    heatmap : numpy.ndarray, optional
        2-D map of values in [0, 1] over the source's field of view, or ``None``.

    Raises
    ------
    ValueError
        ``name`` is empty, ``probability`` or ``threshold`` is NaN or outside [0, 1],
        or ``heatmap`` is not 2-D, not numeric, not finite or outside [0, 1].
    TypeError
        ``code`` is not a :class:`Code`, or ``probability``/``threshold`` not a number.
    """

    name: str
    code: Code
    probability: float
    threshold: float
    positive: bool
    heatmap: np.ndarray | None = None  # float32 [0,1] over the source's field of view

    def __post_init__(self) -> None:
        """Check the label's invariants."""
        _require_text(self, "name")
        if not isinstance(self.code, Code):
            raise TypeError(
                f"LabelResult.code of label {self.name!r} must be a Code (its finding type), "
                f"not {self.code!r}"
            )
        for field in ("probability", "threshold"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)):
                raise TypeError(
                    f"LabelResult.{field} of label {self.name!r} must be a number: {value!r}"
                )
            if math.isnan(value) or not 0 <= value <= 1:
                raise ValueError(
                    f"LabelResult.{field} of label {self.name!r} is {value!r}, not in [0, 1]"
                )
        if self.heatmap is not None:
            _check_heatmap(self.name, self.heatmap)


@dataclass(frozen=True)
class ImageResult:
    """All labels of one model for one source image (one frame of it).

    Parameters
    ----------
    sop_instance_uid : str
        The source image's SOP Instance UID.
    frame : int or None
        1-based frame number for a multi-frame source, else ``None``.
    model : ModelIdentity
        The model that produced the labels.
    labels : tuple of LabelResult
        At least one, with distinct names.

    Raises
    ------
    ValueError
        ``sop_instance_uid`` is empty, ``frame`` is below 1, ``labels`` is empty or
        repeats a name.
    TypeError
        ``model`` is not a :class:`ModelIdentity` or a label not a :class:`LabelResult`.
    """

    sop_instance_uid: str
    frame: int | None
    model: ModelIdentity
    labels: tuple[LabelResult, ...]

    def __post_init__(self) -> None:
        """Check the result's invariants."""
        _require_text(self, "sop_instance_uid")
        where = f"of result for {self.sop_instance_uid}"
        if self.frame is not None and (not isinstance(self.frame, int) or self.frame < 1):
            raise ValueError(f"ImageResult.frame {where} is {self.frame!r}; frames count from 1")
        if not isinstance(self.model, ModelIdentity):
            raise TypeError(f"ImageResult.model {where} must be a ModelIdentity: {self.model!r}")
        if not self.labels:
            raise ValueError(f"ImageResult.labels {where} is empty")
        for label in self.labels:
            if not isinstance(label, LabelResult):
                raise TypeError(f"ImageResult.labels {where} holds {label!r}, not a LabelResult")
        names = [label.name for label in self.labels]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"ImageResult.labels {where} repeats label name(s) {repeated}")
