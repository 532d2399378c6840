"""The writer's value objects refuse to be built broken, naming the field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sr_writer import Code, ImageResult, LabelResult

from .support import MODEL, blob, labels

CODE = Code("36118008", "SCT", "Pneumothorax")


def _label(**changes: object) -> LabelResult:
    return dataclasses.replace(labels()[0], **changes)


@pytest.mark.parametrize("field", ["value", "scheme", "meaning"])
def test_code_needs_every_part(field: str) -> None:
    with pytest.raises(ValueError, match=f"Code.{field}"):
        dataclasses.replace(CODE, **{field: ""})


@pytest.mark.parametrize("field", ["name", "version", "manufacturer", "device_uid"])
def test_model_identity_needs_its_names(field: str) -> None:
    with pytest.raises(ValueError, match=f"ModelIdentity.{field}"):
        dataclasses.replace(MODEL, **{field: ""})


def test_label_needs_a_name() -> None:
    with pytest.raises(ValueError, match="LabelResult.name"):
        _label(name="")


def test_label_needs_a_code() -> None:
    with pytest.raises(TypeError, match="LabelResult.code.*'pneumothorax'"):
        _label(code=None)


@pytest.mark.parametrize("field", ["probability", "threshold"])
@pytest.mark.parametrize("value", [float("nan"), -0.1, 1.5])
def test_label_probability_and_threshold_in_unit_interval(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"LabelResult.{field} .*not in \[0, 1\]"):
        _label(**{field: value})


def test_label_probability_is_a_number() -> None:
    with pytest.raises(TypeError, match="LabelResult.probability"):
        _label(probability="0.5")


@pytest.mark.parametrize(
    ("heatmap", "message"),
    [
        (np.zeros((7, 7, 3), np.float32), r"shape \(7, 7, 3\)"),
        (np.zeros(49, np.float32), r"shape \(49,\)"),
        (np.zeros((0, 7), np.float32), r"shape \(0, 7\)"),
        (np.full((7, 7), "x"), "dtype"),
        (np.full((7, 7), np.nan, np.float32), "NaN"),
        (blob() * 2.0, r"outside \[0, 1\]"),
        (blob() - 0.5, r"outside \[0, 1\]"),
    ],
)
def test_label_heatmap(heatmap: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=f"LabelResult.heatmap .*{message}"):
        _label(heatmap=heatmap)


def test_image_result_needs_a_sop_instance_uid() -> None:
    with pytest.raises(ValueError, match="ImageResult.sop_instance_uid"):
        ImageResult("", None, MODEL, labels())


@pytest.mark.parametrize("frame", [0, -1])
def test_image_result_frame_is_one_based(frame: int) -> None:
    with pytest.raises(ValueError, match="ImageResult.frame"):
        ImageResult("1.2.3", frame, MODEL, labels())


def test_image_result_model_is_a_model_identity() -> None:
    with pytest.raises(TypeError, match="ImageResult.model"):
        ImageResult("1.2.3", None, "chest-demo", labels())  # type: ignore[arg-type]


def test_image_result_needs_labels() -> None:
    with pytest.raises(ValueError, match="ImageResult.labels"):
        ImageResult("1.2.3", None, MODEL, ())


def test_image_result_labels_are_label_results() -> None:
    with pytest.raises(TypeError, match="ImageResult.labels"):
        ImageResult("1.2.3", None, MODEL, ("pneumothorax",))  # type: ignore[arg-type]


def test_image_result_label_names_are_unique() -> None:
    first = labels()[0]
    with pytest.raises(ValueError, match="ImageResult.labels.*'pneumothorax'"):
        ImageResult("1.2.3", None, MODEL, (first, first))


def test_valid_objects_are_built() -> None:
    result = ImageResult("1.2.3", 2, MODEL, labels())
    assert result.frame == 2 and len(result.labels) == 3
    assert _label(heatmap=None).heatmap is None
