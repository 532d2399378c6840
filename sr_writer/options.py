"""Options for the result writers (all have safe defaults)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

DEMO_CAUTION = "AI result \u2014 not for diagnostic use"
# What every object a demo model produced says where a reader sees it (RESULTS-CONFORMANCE).
DEMO_NOTICE = "NON-CLINICAL DEMO \u2014 untrained weights"
DEFAULT_CAUTION = "AI result \u2014 to be reviewed by a radiologist"
# Longest side of a heatmap SC's image area: the one bound (the node's settings use it).
MIN_OUTPUT_SIZE = 256
MAX_OUTPUT_SIZE = 8192


@dataclass(frozen=True)
class WriteOptions:
    """How the SR and the Secondary Capture images are written.

    Attributes
    ----------
    sr_labels
        ``"all"`` writes one measurement group per label (default);
        ``"positive"`` writes only labels at or above their threshold, plus one
        "no finding above threshold" group when there are none.
    heatmaps
        ``"positive"`` writes one heatmap SC per positive label that has a
        heatmap, most probable first (default; an image without a positive label gets
        none); ``"top"`` writes one per analysed image showing its most probable
        label; ``"none"`` writes no heatmap SC.
    max_heatmaps_per_image
        with ``"positive"``, at most this many SCs per image
        (the most probable positives); ``None`` is no cap.
    max_heatmap_images
        for series (CT/MR), keep only the N images whose top
        probability is highest ("key slices"); ``None`` keeps every image.
    findings_card
        write the summary findings card SC.
    caution
        burned-in caution line; ``None`` picks ``DEMO_CAUTION`` for demo
        models and ``DEFAULT_CAUTION`` otherwise.
    max_output_size
        longest side, in pixels, of the image area of a heatmap SC
        (:data:`MIN_OUTPUT_SIZE`..:data:`MAX_OUTPUT_SIZE`);
        larger sources are reduced (aspect kept) before any float work.
    created_at
        the date/time written as content, series, instance creation and
        secondary capture date/time. Pass the job's timestamp so that re-writing
        the same inputs gives byte-identical objects; ``None`` uses the current
        UTC time (then only those date/time attributes differ between runs).
    manufacturer
        Manufacturer of the equipment writing the objects (this node).
    software_version
        Software Versions of the writing equipment.
    sr_series_number, sc_series_number
        Series Number of the result series.
    institution_name
        optional Institution Name for the General Equipment module.
    heatmap_opacity
        maximum opacity of the colour overlay (0..1).
    heatmap_floor
        heatmap values below this are left untinted (the anatomy stays
        readable); from the floor up the colour and its opacity rise to 1.
    procedure_code
        override of the Procedure Reported code as
        ``(value, scheme, meaning)``; default picks one from Modality.
    kos
        write a Key Object Selection document flagging the source images with
        positive findings (only when there are some).
    parametric_map
        write a Parametric Map of each positive finding's heatmap over
        its source image (OHIF overlays it); off by default.
    kos_series_number, pmap_series_number
        Series Number of those series.

    Raises
    ------
    ValueError
        ``max_output_size`` outside its bounds, a cap below 1, or ``heatmap_opacity``
        / ``heatmap_floor`` outside 0..1; the message names the field.
    """

    sr_labels: Literal["all", "positive"] = "all"
    heatmaps: Literal["top", "positive", "none"] = "positive"
    max_heatmaps_per_image: int | None = 3
    max_heatmap_images: int | None = None
    findings_card: bool = True
    caution: str | None = None
    max_output_size: int = 1024
    created_at: dt.datetime | None = None
    manufacturer: str = "dicom-node"
    software_version: str = "0.1.0"
    sr_series_number: int = 9901
    sc_series_number: int = 9902
    institution_name: str | None = None
    heatmap_opacity: float = 0.5
    heatmap_floor: float = 0.5
    procedure_code: tuple[str, str, str] | None = None
    kos: bool = True
    parametric_map: bool = False
    kos_series_number: int = 9903
    pmap_series_number: int = 9904

    def __post_init__(self) -> None:
        """Check the invariants; raise :class:`ValueError` naming the first one broken."""
        if not MIN_OUTPUT_SIZE <= self.max_output_size <= MAX_OUTPUT_SIZE:
            raise ValueError(
                f"max_output_size {self.max_output_size} is not in "
                f"{MIN_OUTPUT_SIZE}..{MAX_OUTPUT_SIZE}"
            )
        for name in ("max_heatmaps_per_image", "max_heatmap_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} {value} is below 1")
        if not 0.0 <= self.heatmap_opacity <= 1.0:
            raise ValueError(f"heatmap_opacity {self.heatmap_opacity} is not in 0..1")
        if not 0.0 <= self.heatmap_floor < 1.0:
            raise ValueError(f"heatmap_floor {self.heatmap_floor} is not in 0..1 (1 excluded)")
