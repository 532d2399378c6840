"""Heatmap Secondary Capture images: the source windowed, the model's heatmap over it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from pydicom.dataset import Dataset

from sr_writer import display, render
from sr_writer.common import caution_line
from sr_writer.inputs import ImageResult, LabelResult
from sr_writer.options import DEMO_NOTICE, WriteOptions
from sr_writer.sc_common import build_sc, patient_orientation
from sr_writer.uids import ResultUIDs

log = logging.getLogger(__name__)


def select(
    results: Sequence[ImageResult], options: WriteOptions
) -> list[tuple[ImageResult, LabelResult]]:
    """Choose the (image, label) pairs that get a heatmap SC, in a stable order."""
    if options.heatmaps == "none":
        return []
    chosen: list[tuple[ImageResult, LabelResult]] = []
    for result in results:
        with_map = [label for label in result.labels if label.heatmap is not None]
        if not with_map:
            continue
        if options.heatmaps == "top":
            top = max(with_map, key=lambda label: (label.probability, label.positive))
            chosen.append((result, top))
        else:
            positive = sorted(
                (label for label in with_map if label.positive),
                key=lambda label: -label.probability,
            )
            cap = options.max_heatmaps_per_image
            chosen.extend((result, label) for label in positive[:cap])
    if options.max_heatmap_images is not None:
        ranked = sorted(
            {id(r): r for r, _ in chosen}.values(),
            key=lambda r: -max(label.probability for label in r.labels),
        )
        keep = {id(r) for r in ranked[: options.max_heatmap_images]}
        chosen = [(r, label) for r, label in chosen if id(r) in keep]
    return chosen


def _scaled_spacing(source: Dataset, shape: tuple[int, int]) -> tuple[float, float] | None:
    """Return the source's Pixel Spacing for the resized image (row, column, in mm).

    ``source`` is the sanitised header: an invalid spacing (zero) is already gone.
    """
    spacing = source.get("PixelSpacing")
    if spacing is None or len(spacing) != 2:
        return None
    return (
        float(spacing[0]) * int(source.Rows) / shape[0],
        float(spacing[1]) * int(source.Columns) / shape[1],
    )


def build_heatmap(
    source: Dataset,
    header: Dataset,
    result: ImageResult,
    label: LabelResult,
    *,
    options: WriteOptions,
    uids: ResultUIDs,
    instance_number: int,
    when: dt.datetime,
) -> Dataset:
    """One heatmap SC for ``label`` of ``result`` over ``source``."""
    assert label.heatmap is not None
    model = result.model
    rows, cols = int(source.Rows), int(source.Columns)
    shape = display.output_shape(rows, cols, options.max_output_size)
    grey = display.window_for_display(source, result.frame, shape)
    heat = display.upsample_heatmap(label.heatmap, shape)
    image = display.blend(grey, heat, options.heatmap_opacity, options.heatmap_floor)
    decision = "POSITIVE" if label.positive else "negative"
    lines = [
        (
            f"{label.code.meaning}: {label.probability:.2f} "
            f"(threshold {label.threshold:.2f}) \u2014 {decision}",
            render.POSITIVE if label.positive else render.NEGATIVE,
            True,
        ),
        (f"Model: {model.name} {model.version} ({model.manufacturer})", render.TEXT, False),
        *([(DEMO_NOTICE, render.CAUTION, True)] if model.demo else []),
        (caution_line(model, options), render.CAUTION, True),
    ]
    orientation = patient_orientation(header)  # sanitised: an invalid one is gone
    markers = render.side_markers(orientation)
    pixels = render.compose(image, lines, legend=True, floor=options.heatmap_floor, markers=markers)
    factor = rows / shape[0]
    sc = build_sc(
        pixels,
        header,
        [(source, result.frame)],
        model=model,
        options=options,
        series_uid=uids.sc_series,
        sop_uid=uids.heatmap_instance(result.sop_instance_uid, result.frame, label.name),
        instance_number=instance_number,
        when=when,
        orientation=orientation,
        pixel_spacing=_scaled_spacing(header, shape),
        derivation=(
            f"Source windowed for display and resized by 1/{factor:.3g}; heatmap of "
            f"{label.name} from {model.name} {model.version} blended over it; "
            "text and legend burned in below the image"
            + ("; patient's right/left marked at the image edges" if markers else "")
        ),
    )
    log.info(
        "heatmap SC built source=%s label=%s size=%dx%d sop=%s",
        result.sop_instance_uid,
        label.name,
        sc.Columns,
        sc.Rows,
        sc.SOPInstanceUID,
    )
    return sc
