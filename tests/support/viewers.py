"""Runs the published viewer code (tests/viewers/ohif_sr.mjs) on an SR and checks its view.

``scripts/install-node-deps.sh`` installs the npm packages; the harness prints one JSON
object (see ohif_sr.mjs for what is real and what is shimmed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VIEWERS = Path(__file__).resolve().parents[1] / "viewers"
HARNESS = VIEWERS / "ohif_sr.mjs"
PMAP_HARNESS = VIEWERS / "ohif_pmap.mjs"
FRAMES_HARNESS = VIEWERS / "ohif_frames.mjs"
DATASOURCE_HARNESS = VIEWERS / "ohif_datasource.mjs"


def unavailable(package: str = "@ohif/extension-cornerstone-dicom-sr") -> str | None:
    """Why a harness needing ``package`` cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/install-node-deps.sh)"
    if not (VIEWERS / "node_modules" / package).is_dir():
        return "viewer packages not installed (scripts/install-node-deps.sh)"
    return None


def frames_unavailable() -> str | None:
    """Why the image loader harness (ohif_frames.mjs) cannot run here, or None."""
    return unavailable("@cornerstonejs/dicom-image-loader")


def datasource_unavailable() -> str | None:
    """Why OHIF's DICOMweb data source harness (ohif_datasource.mjs) cannot run here."""
    return unavailable("@ohif/extension-default")


def _node(harness: Path, args: Sequence[str], timeout: float) -> Any:
    proc = subprocess.run(
        ["node", str(harness), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=VIEWERS,
    )
    assert proc.returncode == 0, f"harness exit {proc.returncode}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def _run(harness: Path, target: Path, sources: Sequence[Path], timeout: float) -> dict:
    return _node(harness, [str(target), *map(str, sources)], timeout)


def run_ohif_frames(urls: Sequence[str], timeout: float = 60) -> list[dict]:
    """What OHIF's image loader makes of each WADO-RS frame URL: its Accept, the part's
    content type, the transfer syntax it would decode with, the pixel data (base64)."""
    return _node(FRAMES_HARNESS, urls, timeout)


def run_ohif_datasource(config: dict[str, Any], timeout: float = 60) -> dict:
    """What OHIF's DICOMweb data source makes of a server: its study list rows, series
    rows and each loaded instance (naturalized, imageIds, MetadataProvider answers), and
    the requests it sent (see ohif_datasource.mjs for ``config``)."""
    return _node(DATASOURCE_HARNESS, [json.dumps(config)], timeout)


def run_ohif_sr(sr: Path, sources: Sequence[Path], timeout: float = 120) -> dict:
    """The SR harness's JSON for ``sr`` with the ``sources`` it refers to."""
    return _run(HARNESS, sr, sources, timeout)


def run_ohif_pmap(pmap: Path, sources: Sequence[Path], timeout: float = 120) -> dict:
    """The Parametric Map harness's JSON: what OHIF's overlay puts on each slice."""
    return _run(PMAP_HARNESS, pmap, sources, timeout)


@dataclass(frozen=True)
class Finding:
    """A positive finding the viewer must locate: on which image, named how."""

    sop_instance_uid: str
    meaning: str
    rows: int
    columns: int


def _bbox(data: Sequence[float]) -> tuple[float, float, float, float]:
    xs, ys = data[0::2], data[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def located(output: dict, findings: Sequence[Finding]) -> list[dict]:
    """For each finding, the OHIF measurement that locates it; AssertionError naming the
    first finding without one (or when OHIF threw while loading)."""
    ohif = output["ohif"]
    assert ohif["error"] is None, f"OHIF threw while loading the SR: {ohif['error']}"
    assert ohif["displaySets"] == 1 and ohif["isImagingMeasurementReport"] is True
    drawn = {a["TrackingUniqueIdentifier"] for a in ohif["annotations"]}
    found = []
    for finding in findings:
        candidates = [
            m
            for m in ohif["measurements"]
            if finding.meaning.lower() in (m["TrackingIdentifier"] or "").lower()
            and m["loaded"]
            and m["graphicType"] in ("POLYLINE", "POINT")
            and m["graphicData"]
            and m["ReferencedSOPInstanceUID"] == finding.sop_instance_uid
            and m["coordsReferencedSOPInstanceUID"] == finding.sop_instance_uid
            and m["TrackingUniqueIdentifier"] in drawn
        ]
        # A location, not the whole analysed image (which every label's classification
        # carries): strictly inside the image on at least one side.
        candidates = [
            m
            for m in candidates
            if _bbox(m["graphicData"]) != (0, 0, finding.columns, finding.rows)
            and all(
                0 <= v <= lim
                for v, lim in zip(
                    _bbox(m["graphicData"]), (finding.columns, finding.rows) * 2, strict=True
                )
            )
        ]
        seen = [
            (m["TrackingIdentifier"], m["graphicType"], m["loaded"]) for m in ohif["measurements"]
        ]
        assert candidates, (
            f"no OHIF measurement locates {finding.meaning} on {finding.sop_instance_uid}: {seen}"
        )
        found.append(candidates[0])
    return found
