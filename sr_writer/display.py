"""Source pixels for display: the frame windowed and reduced, and the heatmap overlay.

Memory: the source is reduced to the output size *before* any float work (block mean
on the stored integers, then a Pillow resize), so a 3000x2500 CR never gets a
full-resolution float copy. The heatmap is upsampled from model resolution only to
the output size.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from sr_writer.errors import ResultWriteError

# A perceptually ordered, colour-blind-safe map (matplotlib's "inferno" anchors),
# starting dark so that low values fade into the anatomy instead of tinting it.
_INFERNO = (
    np.array(
        [
            (0, 0, 4),
            (40, 11, 84),
            (101, 21, 110),
            (159, 42, 99),
            (212, 72, 66),
            (245, 125, 21),
            (250, 193, 39),
            (252, 255, 164),
        ],
        dtype=np.float32,
    )
    / 255.0
)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to RGB floats in [0, 1] (shape + (3,))."""
    v = np.clip(values, 0.0, 1.0) * (len(_INFERNO) - 1)
    lo = np.floor(v).astype(np.intp)
    hi = np.minimum(lo + 1, len(_INFERNO) - 1)
    frac = (v - lo)[..., None]
    return _INFERNO[lo] * (1.0 - frac) + _INFERNO[hi] * frac


MIN_DISPLAY = 512


def output_shape(rows: int, cols: int, max_size: int) -> tuple[int, int]:
    """(rows, cols) scaled so that the longest side is at most ``max_size``.

    Tiny sources are enlarged so that the longest side is ``MIN_DISPLAY`` (or
    ``max_size`` if smaller), keeping the burned-in text and legend readable.
    """
    longest = max(rows, cols)
    scale = min(1.0, max_size / longest)
    if longest < MIN_DISPLAY:
        scale = min(MIN_DISPLAY, max_size) / longest
    return max(1, round(rows * scale)), max(1, round(cols * scale))


COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")


def _stored_frame(ds: Dataset, frame: int | None) -> np.ndarray:
    """Return the frame as stored (greyscale), or as RGB (colour and PALETTE COLOR)."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ResultWriteError(f"source {ds.SOPInstanceUID} has no pixel data")
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    if samples == 3 and photometric not in COLOUR:
        raise ResultWriteError(
            f"source {ds.SOPInstanceUID}: PhotometricInterpretation "
            f"{photometric!r} cannot be rendered"
        )
    if samples not in (1, 3):
        raise ResultWriteError(
            f"source {ds.SOPInstanceUID}: SamplesPerPixel {samples} cannot be rendered"
        )
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    index = (frame or 1) - 1
    try:
        if frames > 1:
            from pydicom.pixels import pixel_array

            stored = pixel_array(ds, index=index)  # colour: YBR converted to RGB
        else:
            stored = ds.pixel_array
        if photometric == "PALETTE COLOR":
            stored = apply_color_lut(stored, ds)
    except Exception as exc:  # decoding failure of any kind, reported by name
        raise ResultWriteError(f"source {ds.SOPInstanceUID}: cannot decode pixels: {exc}") from exc
    return stored


def _reduce(stored: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Reduce a stored frame to ``shape`` as float32 without a full-size float copy.

    Integer-factor block means, computed a band of rows at a time (so only one band is
    ever copied), then a bilinear resize to the exact output shape. Colour frames
    (rows, cols, 3) are reduced one sample at a time.
    """
    if stored.ndim == 3:
        return np.stack([_reduce(stored[..., c], shape) for c in range(stored.shape[2])], axis=-1)
    rows, cols = stored.shape
    factor = max(1, min(rows // shape[0], cols // shape[1]))
    coarser = factor + 1
    if factor > 1 and min(rows // coarser / shape[0], cols // coarser / shape[1]) >= 0.9:
        factor = coarser  # a slight upscale afterwards beats a large intermediate
    if factor > 1:
        r, c = rows // factor, cols // factor
        small = np.empty((r, c), dtype=np.float32)
        band = max(1, 64 // factor) * 8
        for start in range(0, r, band):
            stop = min(r, start + band)
            chunk = stored[start * factor : stop * factor, : c * factor]
            blocks = chunk.reshape(stop - start, factor, c, factor)
            small[start:stop] = blocks.mean(axis=(1, 3), dtype=np.float32)
    else:
        small = stored.astype(np.float32)
    if small.shape != shape:
        img = Image.fromarray(small, mode="F").resize((shape[1], shape[0]), Image.BILINEAR)
        small = np.array(img, dtype=np.float32)  # a writable copy
    return small


def _colour_for_display(ds: Dataset, rgb: np.ndarray, stored_dtype: np.dtype) -> np.ndarray:
    """RGB samples scaled to [0, 1] by their bit depth (palette output: its LUT's)."""
    if str(getattr(ds, "PhotometricInterpretation", "")) == "PALETTE COLOR":
        top = float(np.iinfo(stored_dtype).max) if np.issubdtype(stored_dtype, np.integer) else 1.0
    else:
        top = float(2 ** int(getattr(ds, "BitsStored", 8)) - 1)
    rgb /= top
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def window_for_display(ds: Dataset, frame: int | None, shape: tuple[int, int]) -> np.ndarray:
    """Return the source frame at ``shape``, windowed for display, as floats in [0, 1].

    Greyscale: the source's Modality LUT (rescale, or the LUT Sequence applied to the
    rounded reduced values) and VOI LUT/window (first one) through pydicom; without VOI
    attributes a 1st-99th percentile window is used. MONOCHROME1 is inverted so that
    the result always reads as MONOCHROME2. Colour and PALETTE COLOR sources come back
    as (rows, cols, 3) RGB.
    """
    stored = _stored_frame(ds, frame)
    if stored.ndim == 3:
        return _colour_for_display(ds, _reduce(stored, shape), stored.dtype)
    small = _reduce(stored, shape)
    del stored
    if "ModalityLUTSequence" in ds:  # a lookup table needs integer indices
        small = np.rint(small).astype(np.int64)
    values = np.asarray(apply_modality_lut(small, ds), dtype=np.float32)
    del small
    has_voi = "WindowCenter" in ds or "VOILUTSequence" in ds
    if has_voi:
        voi_input = np.rint(values).astype(np.int64) if "VOILUTSequence" in ds else values
        shown = np.asarray(apply_voi_lut(voi_input, ds, index=0), dtype=np.float32)
        # The output range of the VOI transform: apply it to the extremes.
        probe = np.array([-1e12, 1e12], dtype=np.float64)
        if "VOILUTSequence" in ds and "WindowCenter" not in ds:
            probe = np.array([values.min() - 1e6, values.max() + 1e6], dtype=np.float64)
        bounds = np.asarray(apply_voi_lut(probe, ds, index=0), dtype=np.float64)
        lo, hi = float(bounds.min()), float(bounds.max())
    else:
        shown = values
        lo, hi = (float(x) for x in np.percentile(values, [1.0, 99.0]))
    span = hi - lo if hi > lo else 1.0
    del values
    out = shown if shown.flags.writeable else shown.copy()
    out -= lo
    out /= span
    np.clip(out, 0.0, 1.0, out=out)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")) == "MONOCHROME1":
        np.subtract(1.0, out, out=out)
    return out


def upsample_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic upsampling of a model-resolution heatmap to ``shape``, clipped to [0, 1]."""
    img = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    big = img.resize((shape[1], shape[0]), Image.BICUBIC)
    return np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0)


# The colour scale shown above the floor starts this far into the colour map, so the
# faintest tint is a visible purple, never the map's near-black (which would darken the
# anatomy instead of marking it).
COLOUR_START = 0.3


@functools.lru_cache(maxsize=8)
def overlay_lut(floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour (256x3) and relative opacity (256) of heat values 0..1 for ``floor``.

    Below the floor: no colour (opacity 0). Above it the colour runs from
    ``COLOUR_START`` to the top of the map and the opacity rises quickly to one half and
    then to full, so the edge of the marked region is soft but clearly visible.
    """
    heat = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    rel = np.clip((heat - floor) / max(1e-6, 1.0 - floor), 0.0, 1.0)
    colour = colormap(COLOUR_START + (1.0 - COLOUR_START) * rel).astype(np.float32)
    alpha = (np.clip(rel * 4.0, 0.0, 1.0) * (0.5 + 0.5 * rel)).astype(np.float32)
    alpha[heat < floor] = 0.0
    return colour, alpha


def blend(base: np.ndarray, heat: np.ndarray | None, opacity: float, floor: float) -> np.ndarray:
    """Overlay ``heat`` on ``base``; return uint8 RGB.

    ``base`` is grey (H, W) or RGB (H, W, 3), floats in [0, 1].

    Heat below ``floor`` leaves the image untouched. Works one channel at a time
    through 256-entry tables so that the temporaries stay at one output-size plane.
    """
    rows, cols = base.shape[:2]
    out = np.empty((rows, cols, 3), dtype=np.uint8)

    def plane(channel: int) -> np.ndarray:
        return base if base.ndim == 2 else base[..., channel]

    if heat is None:
        for channel in range(3):
            out[..., channel] = np.round(plane(channel) * 255.0)
        return out
    colour, rel_alpha = overlay_lut(float(floor))
    index = np.round(heat * 255.0).astype(np.uint8)
    alpha = rel_alpha[index] * np.float32(opacity)
    keep = 1.0 - alpha
    for channel in range(3):
        out[..., channel] = np.round(
            (plane(channel) * keep + colour[index, channel] * alpha) * 255.0
        )
    return out
