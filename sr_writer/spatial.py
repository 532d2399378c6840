"""Where a positive finding is: the heatmap's hot region as a TID 1410 planar ROI group.

The model's heatmap covers exactly the source image's field of view at model
resolution (``ai.preprocess.crop_heatmap`` removes the letterbox padding; with the
"stretch" policy there is none), so a heatmap cell (row i, column j) of an h x w map
spans source pixels ``[j * Columns / w, (j + 1) * Columns / w)`` across and
``[i * Rows / h, (i + 1) * Rows / h)`` down. SCOORD pixel coordinates put the top left
corner of the top left pixel at (0, 0) (PS3.3 C.18.6.1.1), so cell corners scale
directly.

The hot region is the 4-connected set of cells at or above half the heatmap's peak
that contains the peak; its outline is the convex hull of those cells' corners
(a closed POLYLINE: always a simple polygon, at most a few dozen points).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    CoordinatesForMeasurement,
    ImageRegion,
    Measurement,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    SourceImageForRegion,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from sr_writer import codes as c
from sr_writer.inputs import ImageResult, LabelResult
from sr_writer.uids import ResultUIDs

log = logging.getLogger(__name__)

# Cells at or above this fraction of the peak belong to the hot region.
HOT_FRACTION = 0.5


@dataclass(frozen=True)
class HotRegion:
    """The hot region of one heatmap in source pixel space (column, row)."""

    outline: np.ndarray  # (n, 2) float, closed: the last point repeats the first
    peak: tuple[float, float]  # centre of the peak cell
    level: float  # heatmap value the region is cut at


def _component(mask: np.ndarray, start: tuple[int, int]) -> list[tuple[int, int]]:
    """Return the 4-connected cells of ``mask`` reachable from ``start`` (row, column).

    Breadth first, over ``mask`` as nested lists (indexing a numpy array one cell at a
    time costs about three times as much); a cell is cleared once queued.
    """
    rows, cols = mask.shape
    grid = mask.tolist()
    i, j = start
    grid[i][j] = False
    queue = deque([start])
    cells = []
    while queue:
        i, j = queue.popleft()
        cells.append((i, j))
        row = grid[i]
        if i + 1 < rows and grid[i + 1][j]:
            grid[i + 1][j] = False
            queue.append((i + 1, j))
        if i > 0 and grid[i - 1][j]:
            grid[i - 1][j] = False
            queue.append((i - 1, j))
        if j + 1 < cols and row[j + 1]:
            row[j + 1] = False
            queue.append((i, j + 1))
        if j > 0 and row[j - 1]:
            row[j - 1] = False
            queue.append((i, j - 1))
    return cells


def _cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _convex_hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Andrew's monotone chain; counter-clockwise, no repeated point, no collinear ones."""
    pts = sorted(set(points))
    if len(pts) <= 2:
        return pts
    lower: list[tuple[int, int]] = []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[int, int]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def hot_region(heatmap: np.ndarray, rows: int, cols: int) -> HotRegion | None:
    """Return the hot region of ``heatmap`` scaled to a ``rows`` x ``cols`` source.

    None when the heatmap is all zero (it points nowhere).
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    h, w = heat.shape
    peak_index = np.unravel_index(int(np.argmax(heat)), heat.shape)
    peak = float(heat[peak_index])
    if peak <= 0:
        return None
    level = peak * HOT_FRACTION
    cells = _component(heat >= level, (int(peak_index[0]), int(peak_index[1])))
    # The hull of the cells is the hull of each row's outermost cells' corners,
    # as (x, y) = (column, row) in heatmap cells.
    extremes: dict[int, tuple[int, int]] = {}
    for i, j in cells:
        lo, hi = extremes.get(i, (j, j))
        extremes[i] = (min(lo, j), max(hi, j))
    corners = [(x, y) for i, (lo, hi) in extremes.items() for x in (lo, hi + 1) for y in (i, i + 1)]
    hull = _convex_hull(corners)
    sx, sy = cols / w, rows / h
    outline = np.array([(x * sx, y * sy) for x, y in hull] + [(hull[0][0] * sx, hull[0][1] * sy)])
    peak_xy = ((int(peak_index[1]) + 0.5) * sx, (int(peak_index[0]) + 0.5) * sy)
    return HotRegion(outline=outline.astype(np.float32), peak=peak_xy, level=level)


def _border(header: Dataset) -> np.ndarray:
    """Return the analysed image's outline, closed: (0,0) to (Columns, Rows)."""
    rows, cols = float(header.Rows), float(header.Columns)
    return np.array([(0, 0), (cols, 0), (cols, rows), (0, rows), (0, 0)], dtype=np.float32)


def _source(header: Dataset, frame: int | None) -> SourceImageForRegion:
    return SourceImageForRegion.from_source_image(
        header, referenced_frame_numbers=[frame] if frame is not None else None
    )


def image_area(header: Dataset, frame: int | None) -> CoordinatesForMeasurement:
    """Return the whole analysed image as a closed POLYLINE along its border.

    The region a per-label classification was computed over (its probability is
    INFERRED FROM it).

    OHIF's SR extension (3.13) throws while loading a report whose measurement groups
    lack coordinates, so every group carries the region it describes.
    """
    return CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_border(header),
        source_image=_source(header, frame),
    )


def whole_image(header: Dataset, frame: int | None) -> ImageRegion:
    """Return the whole analysed image as a TID 1410 Image Region (for statements on it)."""
    return ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_border(header),
        source_image=_source(header, frame),
    )


def region_group(
    label: LabelResult,
    result: ImageResult,
    header: Dataset,
    where: str,
    uids: ResultUIDs,
    algorithm: AlgorithmIdentification,
) -> PlanarROIMeasurementsAndQualitativeEvaluations | None:
    """Build the TID 1410 group locating a positive ``label`` on its source image.

    None when the label has no heatmap (nothing says where) or an all-zero one.
    """
    if not label.positive or label.heatmap is None:
        return None
    region = hot_region(label.heatmap, int(header.Rows), int(header.Columns))
    if region is None:
        log.info(
            "no hot region source=%s label=%s: heatmap is all zero",
            result.sop_instance_uid,
            label.name,
        )
        return None
    finding = c.concept(label.code)
    image_region = ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=region.outline,
        source_image=_source(header, result.frame),
    )
    group = PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=uids.region_tracking(result.sop_instance_uid, result.frame, label.name),
            # No ':' here: OHIF's adapters read "a:b" identifiers as their own tool types.
            identifier=f"{label.code.meaning} region{where}"[:64],
        ),
        referenced_region=image_region,
        finding_type=finding,
        algorithm_id=algorithm,
        measurements=[
            Measurement(
                name=c.CERTAINTY_OF_FINDING, value=float(label.probability), unit=c.UNIT_ONE
            )
        ],
        qualitative_evaluations=[QualitativeEvaluation(name=finding, value=c.PRESENT)],
    )
    # Viewers that label a measurement by its comment (OHIF's Cornerstone3D adapters)
    # show this; the text repeats what the coded items say.
    group[0].ContentSequence.append(
        hd.sr.TextContentItem(
            name=codes.DCM.Comment,
            value=(
                f"{label.code.meaning} {label.probability:.2f} (threshold "
                f"{label.threshold:.2f}): present; outline of the heatmap at "
                f">= {HOT_FRACTION:.0%} of its peak"
            )[:1024],
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    )
    return group


__all__ = ["HOT_FRACTION", "HotRegion", "hot_region", "image_area", "region_group", "whole_image"]
