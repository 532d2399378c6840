"""Parametric Map of a positive finding's heatmap, on its source image's pixel grid.

OHIF's pmap extension overlays a Parametric Map on the image it was derived from.
The heatmap (model resolution, covering the source's field of view) is upsampled to
the source's Rows x Columns and stored as 16-bit integers; the Real World Value
Mapping (slope 1/65535) turns them back into the heatmap's 0..1 activation (UCUM
"1"). Off by default (``WriteOptions.parametric_map``); written for single-frame sources with
a Frame of Reference (CT, MR...), not for projection radiographs (see ``select``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from sr_writer import render
from sr_writer.common import (
    append_algorithm_equipment,
    copy_extra_patient_study,
    copy_laterality,
    series_description,
    set_times,
    settle_character_set,
)
from sr_writer.inputs import ImageResult, LabelResult
from sr_writer.options import WriteOptions
from sr_writer.uids import ResultUIDs

log = logging.getLogger(__name__)

LEVELS = 65535  # stored value of activation 1.0
UNIT_ONE = hd.sr.CodedConcept("1", "UCUM", "no units")


def select(results: Sequence[ImageResult], sources: dict[str, Dataset]
           ) -> list[tuple[ImageResult, LabelResult]]:
    """The (image, positive label with a heatmap) pairs that get a Parametric Map.

    Only single-frame sources with a Frame of Reference: highdicom (0.28) cannot build
    a Parametric Map over an image without one (projection radiographs), and OHIF's
    pmap overlay places the map by that geometry.
    """
    chosen = []
    for result in results:
        source = sources[result.sop_instance_uid]
        if result.frame is not None or "FrameOfReferenceUID" not in source:
            if any(label.positive and label.heatmap is not None for label in result.labels):
                log.info("no parametric map for source=%s: %s", result.sop_instance_uid,
                         "a frame of a multi-frame image" if result.frame is not None
                         else "it has no Frame of Reference")
            continue
        chosen.extend((result, label) for label in result.labels
                      if label.positive and label.heatmap is not None)
    return chosen


def build_pmap(
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
    """The Parametric Map of ``label``'s heatmap over ``source`` (one frame)."""
    assert label.heatmap is not None and label.code is not None
    model = result.model
    rows, cols = int(source.Rows), int(source.Columns)
    heat = render.upsample_heatmap(label.heatmap, (rows, cols))
    pixels = np.rint(heat * LEVELS).astype(np.uint16)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=label.name[:16],
        lut_explanation=f"{label.code.meaning} activation (0..1)"[:64],
        unit=UNIT_ONE,
        value_range=(0, LEVELS),
        slope=1.0 / LEVELS,
        intercept=0.0,
    )
    pmap = hd.pm.ParametricMap(
        source_images=[source],
        pixel_array=pixels,
        series_instance_uid=uids.pmap_series,
        series_number=options.pmap_series_number,
        sop_instance_uid=uids.pmap_instance(result.sop_instance_uid, result.frame, label.name),
        instance_number=instance_number,
        manufacturer=options.manufacturer,
        manufacturer_model_name=f"{model.name} {model.version}"[:64],
        software_versions=options.software_version,
        device_serial_number=model.device_uid[:64],
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(
            window_center=LEVELS / 2, window_width=LEVELS)],
        content_label=label.name.upper().replace(" ", "_")[:16] or "HEATMAP",
        content_description=f"AI heatmap: {label.code.meaning}"[:64],
        content_qualification="RESEARCH" if model.demo else "PRODUCT",
        series_description=series_description(model, "parametric map"),
    )
    # highdicom draws a random Dimension Organization UID: derive it, like every UID here.
    organization = uids.uid("pmap-dimensions", result.sop_instance_uid, result.frame,
                            label.name)
    for item in (*pmap.DimensionOrganizationSequence, *pmap.DimensionIndexSequence):
        item.DimensionOrganizationUID = organization
    set_times(pmap, when, ("ContentDate", "ContentTime"), ("SeriesDate", "SeriesTime"),
              ("InstanceCreationDate", "InstanceCreationTime"))
    copy_extra_patient_study(pmap, header)
    copy_laterality(pmap, header)
    append_algorithm_equipment(pmap, model, when)
    settle_character_set(pmap)
    log.info("parametric map built source=%s label=%s size=%dx%d sop=%s",
             result.sop_instance_uid, label.name, cols, rows, pmap.SOPInstanceUID)
    return pmap


__all__ = ["build_pmap", "select"]
