"""WADO-RS rendered (PS3.18 8.3.5): an instance or one frame as an 8-bit JPEG or PNG,
decoded one frame at a time within ``http.max_decoded_mb``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dicom_node.http import codestream
from dicom_node.http.budget import DECODING
from dicom_node.http.problem import Problem
from dicom_node.http.render_params import Rendering
from dicom_node.http.wado import Stored, check_files, decoded_bytes, read_dataset
from dicom_node.http.wado_accept import Ranges, flat
from dicom_node.index.header import INFLATE_MAX

RENDERED = {"image/jpeg": "JPEG", "image/png": "PNG"}


def rendered_type(acceptable: list[Ranges]) -> str:
    """``image/jpeg`` (the default) or ``image/png``, the first that ``acceptable``
    (:func:`.wado_accept.requested`) allows; Problem 406 otherwise."""
    for media, _ in flat(acceptable):
        if media in RENDERED:
            return media
        if media in ("*/*", "image/*"):
            return "image/jpeg"
    raise Problem(406, "Not Acceptable", "rendered images are image/jpeg or image/png")


def render(
    inst: Stored,
    media: str,
    limit: int,
    frame: int | None = None,
    rendering: Rendering = Rendering(),
) -> bytes:
    """An 8-bit rendering of a single-frame image, or of ``frame`` (1-based) of a
    multi-frame one, as ``rendering`` asks: its source region, then the modality LUT,
    the window asked (or the image's, or the full range), MONOCHROME1 inverted (colour
    images as they are); scaled to fit the viewport if given, its aspect ratio kept.
    Only that frame is decoded. Problem 400 if it would take more than ``limit`` bytes
    (8 per sample while it is windowed, 4 per pixel of the viewport)."""
    if not inst.rows:
        raise Problem(400, "Bad Request", "the instance has no pixel data to render")
    frames = inst.frames or 1
    if frame is None and frames > 1:
        raise Problem(
            400,
            "Bad Request",
            f"the instance has {frames} frames: ask for one with .../frames/{{n}}/rendered",
        )
    if frame is not None and frame > frames:
        raise Problem(
            404,
            "Not Found",
            f"frame {frame} does not exist: instance {inst.sop} has {frames} "
            f"frame{'s' if frames != 1 else ''}",
            frame=str(frame),
        )
    check_files([inst])
    samples = decoded_bytes(inst) // frames
    viewport = rendering.viewport
    need = samples * 8 + (viewport[0] * viewport[1] * 4 if viewport else 0)
    if need > limit:
        raise Problem(
            400,
            "Bad Request",
            f"the image is too large to render: {need // 2**20} MB while windowed, "
            f"more than http.max_decoded_mb ({limit // 2**20} MB)",
        )
    deflated = inst.transfer_syntax == DeflatedExplicitVRLittleEndian
    if deflated and samples * frames > limit:  # inflated whole to read one frame
        raise Problem(
            400,
            "Bad Request",
            f"the image is stored Deflated and takes {samples * frames // 2**20} MB inflated, "
            f"more than http.max_decoded_mb ({limit // 2**20} MB)",
        )

    # No decoder allocates past the header, nor passes over the image too many times.
    codestream.check_instance(inst, frame or 1)
    # A Deflated dataset is read whole (pydicom cannot seek in it): capped to its size.
    ds = read_dataset(inst, not deflated, samples * frames + INFLATE_MAX)
    box = _box(rendering.region, int(ds.get("Rows", 0)), int(ds.get("Columns", 0)))
    DECODING.admit()
    source = ds if deflated else inst.path
    index = frame - 1 if frames > 1 and frame else None
    try:  # the decode and the windowing share the limit with every other in flight
        with DECODING.hold(need, limit):
            return _rendered(source, index, ds, media, box, rendering)
    except TimeoutError as err:
        raise Problem(503, "Service Unavailable", f"busy decoding others: {err}") from None


Box = tuple[slice, slice]  # rows, columns of the source region (a step of -1: flipped)


def _box(
    region: tuple[float, float, float | None, float | None] | None, rows: int, cols: int
) -> Box:
    """The source region ``sx, sy, sw, sh`` (PS3.18 8.3.5.1.3) of a ``rows`` x ``cols``
    image as slices, rounded to whole pixels: the whole image if None; sw (sh) None runs
    to the right (bottom) edge; a negative one takes the same span, flipped. Problem 400
    naming the viewport if the region is empty or leaves the image."""
    if region is None:
        return slice(None), slice(None)
    sx, sy, sw, sh = region
    spans = []
    for start, span, size, axis in ((sy, sh, rows, "sy,sh"), (sx, sw, cols, "sx,sw")):
        first = round(start)
        last = size if span is None else first + round(abs(span))
        if not first < last <= size:
            raise Problem(
                400,
                "Bad Request",
                f"viewport: the source region ({axis}) must lie within the image's "
                f"{cols} x {rows} pixels and hold at least one",
                parameter="viewport",
            )
        flipped = span is not None and span < 0
        spans.append(
            slice(last - 1, first - 1 if first else None, -1) if flipped else slice(first, last)
        )
    return spans[0], spans[1]


def _rendered(
    source: Any,
    index: int | None,
    ds: pydicom.Dataset,
    media: str,
    box: Box,
    rendering: Rendering,
) -> bytes:
    """Frame ``index`` (None: the only one) of ``source`` (a path or ``ds``) decoded,
    cut to ``box``, windowed to 8 bits, fitted to the viewport and encoded as ``media``;
    Problem 422 if it cannot be decoded."""
    from pydicom.pixels import pixel_array

    try:
        pixels = pixel_array(source, index=index)
    except Exception as err:  # noqa: BLE001 - decoders raise many kinds on bad data
        raise Problem(
            422, "Unprocessable Content", f"its pixel data cannot be decoded: {err}"
        ) from None
    pixels = pixels[box]
    if ds.get("SamplesPerPixel", 1) == 1:
        values = _windowed(pixels, ds, rendering.window)
        del pixels
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":
            np.subtract(255.0, values, out=values)
        image = Image.fromarray(values.round().astype(np.uint8), mode="L")
    else:
        image = Image.fromarray(np.ascontiguousarray(pixels).astype(np.uint8))
    if rendering.viewport is not None:
        image = _fitted(image, *rendering.viewport)
    out = io.BytesIO()
    if media == "image/jpeg" and rendering.quality is not None:
        image.save(out, format=RENDERED[media], quality=rendering.quality)
    else:
        image.save(out, format=RENDERED[media])
    return out.getvalue()


def _windowed(
    pixels: np.ndarray, ds: pydicom.Dataset, window: tuple[float, float, str] | None
) -> np.ndarray:
    """Grayscale ``pixels`` as 0 to 255 (float64): the modality LUT, then ``window``
    (center, width, VOI LUT Function) if given, else the image's VOI LUT or window; a
    window's output range (PS3.3 C.11.2.1.2) maps to 0-255, any other result's own
    range does."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if window is not None:  # as if the image carried it (``ds`` is this request's own)
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = window
        if "VOILUTSequence" in ds:
            del ds.VOILUTSequence
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    lut = "VOILUTSequence" in ds
    if lut or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds).astype(np.float64)
    if "WindowCenter" in ds and not lut:  # the window's whole output range, below to above
        low, high = apply_voi_lut(np.array([-np.inf, np.inf]), ds).tolist()
    else:
        low, high = float(values.min()), float(values.max())
    values -= low
    values /= high - low or 1.0  # in place, as (v - low) / range * 255
    values *= 255.0
    return values


def _fitted(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled, up or down, to the largest size within ``width`` x ``height``
    that keeps its aspect ratio (as it is if it already has that size)."""
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)
