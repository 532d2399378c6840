"""WADO-RS thumbnails (PS3.18 10.4.1.1.4, payload 10.4.3.3.4): one image representative
of a study, series, instance or frame, rendered by :mod:`.render` and scaled to fit the
``viewport`` (``vw,vh``; thumbnails take no source region).

The standard leaves the choice of image to the origin server. Here: a multi-frame
instance's middle frame; a series' middle image instance by Instance Number (instances
without Pixel Data, such as an SR, skipped); a study's first image series by Series
Number (then Series Instance UID) among the instances it received, the node's own
results (the heatmap SC) only when the study has none. Nothing is annotated, so no
thumbnail identifies the patient.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dicom_node.http import render_params, wado
from dicom_node.http.frames_accept import parse_frame_list
from dicom_node.http.problem import Problem
from dicom_node.http.results import catalogue
from dicom_node.index.tables import Instance

DEFAULT_VIEWPORT = (128, 128)
MAX_SIDE = 1024  # pixels per side of a thumbnail: a larger one is a rendering


def viewport(values: list[str]) -> tuple[int, int]:
    """The ``viewport`` query parameter as (width, height); :data:`DEFAULT_VIEWPORT` if
    absent; Problem 400 unless it is once ``vw,vh``, each 1 to :data:`MAX_SIDE`."""
    size, _ = render_params.viewport(values, MAX_SIDE, region=False, what="a thumbnail's")
    return size or DEFAULT_VIEWPORT


def choose(
    session: Any,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    frames: str | None = None,
) -> tuple[wado.Stored, int | None]:
    """The instance and frame (None: its only one) whose rendering is the thumbnail of
    the study, series, instance or frame named; Problem 404 if there is no such thing or
    it holds no image, 400 for a frame list of more than one."""
    frame = None
    if frames is not None:
        numbers = parse_frame_list(frames)
        if len(numbers) != 1:
            raise Problem(400, "Bad Request", "a thumbnail is of one frame")
        frame = numbers[0]
    if series is None:
        series = _first_image_series(session, study)
    found = wado.find(session, study, series, instance)
    images = [i for i in found if i.rows]
    if not images:
        what = f"instance {instance}" if instance else f"series {series}"
        raise Problem(404, "Not Found", f"{what} has no image to make a thumbnail of")
    chosen = images[len(images) // 2]
    count = chosen.frames or 1
    if frame is None and count > 1:
        frame = (count + 1) // 2  # the middle frame
    return chosen, frame


def _first_image_series(session: Any, study: str) -> str:
    """The study's first received image series, else its first result with an image;
    Problem 404 if the study is unknown or has no image."""
    for source in (Instance.__table__, catalogue()):
        c = source.c
        first = session.scalar(
            select(c.series_uid)
            .where(c.study_uid == study, c.rows > 0)
            .order_by(c.series_number.is_(None), c.series_number, c.series_uid)
            .limit(1)
        )
        if first is not None:
            return str(first)
    c = catalogue().c
    if session.scalar(select(c.study_uid).where(c.study_uid == study).limit(1)) is None:
        raise Problem(404, "Not Found", "no such study in this node's store")
    raise Problem(404, "Not Found", f"study {study} has no image to make a thumbnail of")
