"""Parametric Map of a finding's heatmaps over the analysed series, on its pixel grid.

OHIF's pmap extension overlays a Parametric Map on the volume of the series it
references: it builds a volume of that series (slices sorted along the scan axis, as
Cornerstone's ``sortImageIdsAndGetSpacing`` does) and copies the map's frames into it
in frame order (``adaptersPMAP.Cornerstone3D.ParametricMap.generateToolState`` returns
the frames as stored). So one map per (series, label) holds one frame per analysed
slice, ordered by position along the scan axis, lowest first; highdicom orders the
frames its own way, so they are put in that order after building.

Each heatmap (model resolution, covering the slice's field of view) is upsampled to
Rows x Columns and stored as 32-bit float (Float Pixel Data), the 0..1 activation
itself, with an identity Real World Value Mapping (UCUM "1"): dcmjs and the Cornerstone
adapters read Parametric Maps of 32-bit data only (16-bit maps come out as signed
values in OHIF, i.e. wrong above 0.5). Off by default
(``WriteOptions.parametric_map``). Written for series of single-frame images with a
Frame of Reference and plane geometry (CT, MR...), for every label positive on at
least one of them, when every analysed image of the series has that label's heatmap.
Not for projection radiographs: highdicom (0.28) cannot build a Parametric Map over an
image without a Frame of Reference, and OHIF overlays maps on volumes only.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from sr_writer import display
from sr_writer.common import (
    append_algorithm_equipment,
    copy_extra_patient_study,
    copy_laterality,
    series_description,
    set_times,
    settle_character_set,
)
from sr_writer.inputs import ImageResult
from sr_writer.options import DEMO_NOTICE, WriteOptions
from sr_writer.uids import ResultUIDs

log = logging.getLogger(__name__)

UNIT_ONE = hd.sr.CodedConcept("1", "UCUM", "no units")
GEOMETRY = (
    "FrameOfReferenceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
)


@dataclass(frozen=True)
class MapRequest:
    """One Parametric Map: a label over the analysed images of one series."""

    series_uid: str
    label: str
    results: tuple[ImageResult, ...]  # ordered along the scan axis, lowest first


def _along_normal(ds: Dataset) -> float:
    """Position of a slice along its scan axis (row x column direction)."""
    orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal))


def select(results: Sequence[ImageResult], sources: dict[str, Dataset]) -> list[MapRequest]:
    """Choose the Parametric Maps to write (see the module docstring for which)."""
    by_series: dict[str, list[ImageResult]] = {}
    for result in results:
        series = str(sources[result.sop_instance_uid].SeriesInstanceUID)
        by_series.setdefault(series, []).append(result)
    requests = []
    for series, group in by_series.items():
        positive = [
            label.name
            for r in group
            for label in r.labels
            if label.positive and label.heatmap is not None
        ]
        if not positive:
            continue
        missing = [k for r in group for k in GEOMETRY if k not in sources[r.sop_instance_uid]]
        if missing or any(r.frame is not None for r in group):
            log.info(
                "no parametric map for series=%s: %s",
                series,
                f"sources lack {sorted(set(missing))}"
                if missing
                else "frames of multi-frame images",
            )
            continue
        ordered = tuple(sorted(group, key=lambda r: _along_normal(sources[r.sop_instance_uid])))
        for name in dict.fromkeys(positive):  # each label once, in result order
            maps = [next(lab for lab in r.labels if lab.name == name).heatmap for r in ordered]
            if any(m is None for m in maps):
                log.info(
                    "no parametric map for series=%s label=%s: not every image has its heatmap",
                    series,
                    name,
                )
                continue
            requests.append(MapRequest(series, name, ordered))
    return requests


def _frames_in_order(pmap: hd.pm.ParametricMap, order: list[str]) -> None:
    """Reorder the map's frames to follow ``order`` (source SOP Instance UIDs)."""
    items = list(pmap.PerFrameFunctionalGroupsSequence)
    refs = [
        str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        for item in items
    ]
    if refs == order:
        return
    index = [refs.index(uid) for uid in order]
    pixels = np.frombuffer(pmap.FloatPixelData, dtype="<f4").reshape(
        len(items), int(pmap.Rows), int(pmap.Columns)
    )
    pmap.FloatPixelData = np.ascontiguousarray(pixels[index]).tobytes()
    pmap.PerFrameFunctionalGroupsSequence = [items[i] for i in index]


def build_pmap(
    sources: dict[str, Dataset],
    request: MapRequest,
    *,
    options: WriteOptions,
    uids: ResultUIDs,
    instance_number: int,
    when: dt.datetime,
) -> Dataset:
    """Build the Parametric Map of ``request.label`` over its series' analysed images."""
    model = request.results[0].model
    images = [sources[r.sop_instance_uid] for r in request.results]
    labels = [next(lab for lab in r.labels if lab.name == request.label) for r in request.results]
    code = labels[0].code
    pixels = np.stack(
        [
            display.upsample_heatmap(label.heatmap, (int(ds.Rows), int(ds.Columns)))
            for label, ds in zip(labels, images, strict=True)
        ]
    ).astype(np.float32)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=request.label[:16],
        lut_explanation=f"{code.meaning} activation (0..1)"[:64],
        unit=UNIT_ONE,
        value_range=(0.0, 1.0),
        slope=1.0,
        intercept=0.0,
    )
    pmap = hd.pm.ParametricMap(
        source_images=images,
        pixel_array=pixels,
        series_instance_uid=uids.pmap_series,
        series_number=options.pmap_series_number,
        sop_instance_uid=uids.pmap_instance(request.series_uid, request.label),
        instance_number=instance_number,
        manufacturer=options.manufacturer,
        manufacturer_model_name=f"{model.name} {model.version}"[:64],
        software_versions=options.software_version,
        device_serial_number=model.device_uid[:64],
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        content_label=request.label.upper().replace(" ", "_")[:16] or "HEATMAP",
        content_description=(
            f"{DEMO_NOTICE}: {code.meaning}" if model.demo else f"AI heatmap: {code.meaning}"
        )[:64],
        content_qualification="RESEARCH" if model.demo else "PRODUCT",
        series_description=series_description(model, "parametric map"),
    )
    _frames_in_order(pmap, [r.sop_instance_uid for r in request.results])
    # highdicom draws a random Dimension Organization UID: derive it, like every UID here.
    organization = uids.uid("pmap-dimensions", request.series_uid, request.label)
    for item in (*pmap.DimensionOrganizationSequence, *pmap.DimensionIndexSequence):
        item.DimensionOrganizationUID = organization
    set_times(
        pmap,
        when,
        ("ContentDate", "ContentTime"),
        ("SeriesDate", "SeriesTime"),
        ("InstanceCreationDate", "InstanceCreationTime"),
    )
    copy_extra_patient_study(pmap, images[0])
    copy_laterality(pmap, images[0])
    append_algorithm_equipment(pmap, model, when)
    settle_character_set(pmap)
    log.info(
        "parametric map built series=%s label=%s frames=%d sop=%s",
        request.series_uid,
        request.label,
        len(images),
        pmap.SOPInstanceUID,
    )
    return pmap


__all__ = ["MapRequest", "build_pmap", "select"]
