"""WriteOptions checks its own invariants, and the node's settings use the same bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dicom_node.settings.jobs import ResultsSettings
from sr_writer.options import MAX_OUTPUT_SIZE, MIN_OUTPUT_SIZE, WriteOptions


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_output_size", MIN_OUTPUT_SIZE - 1),
        ("max_output_size", MAX_OUTPUT_SIZE + 1),
        ("max_heatmaps_per_image", 0),
        ("max_heatmap_images", 0),
        ("heatmap_opacity", 1.5),
        ("heatmap_floor", 1.0),
        ("heatmap_floor", -0.1),
    ],
)
def test_an_invalid_option_is_refused_at_construction(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        WriteOptions(**{field: value})


def test_the_bounds_are_valid() -> None:
    for size in (MIN_OUTPUT_SIZE, MAX_OUTPUT_SIZE):
        assert WriteOptions(max_output_size=size).max_output_size == size


@pytest.mark.parametrize("size", [MIN_OUTPUT_SIZE - 1, MAX_OUTPUT_SIZE + 1])
def test_settings_use_the_same_bound(size: int) -> None:
    with pytest.raises(ValidationError, match="max_output_size"):
        ResultsSettings(max_output_size=size)
    assert (
        ResultsSettings(max_output_size=MIN_OUTPUT_SIZE).write_options().max_output_size
        == MIN_OUTPUT_SIZE
    )
