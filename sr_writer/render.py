"""Display rendering: windowed source, colour heatmap overlay, legend, burned-in text.

Memory: the source is reduced to the output size *before* any float work (block mean
on the stored integers, then a Pillow resize), so a 3000x2500 CR never gets a
full-resolution float copy. The heatmap is upsampled from model resolution only to
the output size.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
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

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)
BOLD_CANDIDATES = tuple(p.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf") for p in FONT_CANDIDATES)

PANEL_BG = (24, 24, 28)
TEXT = (235, 235, 235)
MUTED = (170, 170, 175)
CAUTION = (255, 196, 0)
POSITIVE = (255, 120, 90)
NEGATIVE = (140, 200, 140)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to RGB floats in [0, 1] (shape + (3,))."""
    v = np.clip(values, 0.0, 1.0) * (len(_INFERNO) - 1)
    lo = np.floor(v).astype(np.intp)
    hi = np.minimum(lo + 1, len(_INFERNO) - 1)
    frac = (v - lo)[..., None]
    return _INFERNO[lo] * (1.0 - frac) + _INFERNO[hi] * frac


@functools.lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when installed (full Unicode), else Pillow's bundled font."""
    for path in BOLD_CANDIDATES if bold else FONT_CANDIDATES:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def printable(text: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """Replace characters the fallback font cannot draw."""
    if isinstance(fnt, ImageFont.FreeTypeFont) and "DejaVu" in (fnt.getname()[0] or ""):
        return text
    return (
        text.replace("\u2014", "-")
        .replace("\u2265", ">=")
        .replace("\u2013", "-")
        .replace("\u2026", "...")
    )


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
    """The frame as stored (greyscale), or as RGB (colour and PALETTE COLOR sources)."""
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
    """The source frame at ``shape``, windowed for display, as floats in [0, 1].

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
def _lut(floor: float) -> tuple[np.ndarray, np.ndarray]:
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
    """``base`` (grey (H, W) or RGB (H, W, 3) floats in [0,1]) with ``heat`` overlaid;
    returns uint8 RGB.

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
    colour, rel_alpha = _lut(float(floor))
    index = np.round(heat * 255.0).astype(np.uint8)
    alpha = rel_alpha[index] * np.float32(opacity)
    keep = 1.0 - alpha
    for channel in range(3):
        out[..., channel] = np.round(
            (plane(channel) * keep + colour[index, channel] * alpha) * 255.0
        )
    return out


def panel_height(width: int, lines: int, legend: bool) -> int:
    """Height of the text band under the image for ``lines`` lines (+ legend row)."""
    size = text_size(width)
    rows = math.ceil(size * 1.25) * lines + (math.ceil(size * 2.2) if legend else 0)
    return rows + 2 * margin(width)


def text_size(width: int) -> int:
    """Font size that stays readable on both small and capped large outputs."""
    return max(12, min(28, round(width / 40)))


def margin(width: int) -> int:
    return max(6, round(width / 64))


def draw_legend(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], floor: float, size: int
) -> None:
    """A horizontal bar 0..1 with tick labels inside ``box`` (x0, y0, x1, y1): grey below
    ``floor`` (left untinted), the overlay's colours above it."""
    x0, y0, x1, y1 = box
    fnt = font(max(11, size - 3))
    label_h = size
    bar_h = max(6, (y1 - y0) - label_h - 4)
    colour, _alpha = _lut(float(floor))
    steps = max(2, x1 - x0)
    for i in range(steps):
        value = i / (steps - 1)
        if value < floor:
            shade = (60, 60, 64) if (i // 4) % 2 else (44, 44, 48)  # "no colour" hatching
        else:
            shade = tuple(int(round(v * 255)) for v in colour[round(value * 255)])
        draw.line([(x0 + i, y0), (x0 + i, y0 + bar_h)], fill=shade)
    draw.rectangle([x0, y0, x1 - 1, y0 + bar_h], outline=MUTED)
    for tick in sorted({0.0, round(floor, 2), 1.0}):
        x = x0 + round(tick * (x1 - x0 - 1))
        draw.line([(x, y0 + bar_h), (x, y0 + bar_h + 3)], fill=MUTED)
        text = f"{tick:g}"
        w = draw.textlength(text, font=fnt)
        tx = min(max(x0, x - w / 2), x1 - w)
        draw.text((tx, y0 + bar_h + 4), text, font=fnt, fill=MUTED)


def wrap_text(
    draw: ImageDraw.ImageDraw, text: str, fnt: ImageFont.ImageFont, width: float
) -> list[str]:
    """``text`` broken at spaces into lines that fit ``width`` pixels (a word longer than
    a line is cut with an ellipsis)."""
    lines: list[str] = []
    current = ""
    for word in printable(text, fnt).split():
        candidate = f"{current} {word}" if current else word
        if draw.textlength(candidate, font=fnt) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = (
            word if draw.textlength(word, font=fnt) <= width else fit_text(draw, word, fnt, width)
        )
    if current:
        lines.append(current)
    return lines


_OPPOSITE = {"L": "R", "R": "L"}


def side_markers(orientation: tuple[str, str] | None) -> dict[str, str]:
    """Edge -> letter ("left", "right", "top", "bottom") of the patient's right/left,
    from Patient Orientation (PS3.3 C.7.6.1.1.1: the first value is the direction of
    the rows, towards the right edge; the second of the columns, towards the bottom).
    Only an axis whose main direction is R or L gets markers."""
    if orientation is None:
        return {}
    markers: dict[str, str] = {}
    for value, (start, end) in zip(
        orientation, (("left", "right"), ("top", "bottom")), strict=True
    ):
        main = str(value)[:1]
        if main in _OPPOSITE:
            markers[end] = main
            markers[start] = _OPPOSITE[main]
    return markers


def draw_side_markers(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], markers: dict[str, str]
) -> None:
    """Burn the R/L letters in at the middle of the image edges they name (white,
    dark outline, so they read on any anatomy)."""
    width, rows = size
    px = max(14, round(min(width, rows) / 18))
    fnt = font(px, True)
    pad = max(4, px // 3)
    for edge, letter in markers.items():
        w = draw.textlength(letter, font=fnt)
        x = {"left": pad, "right": width - pad - w}.get(edge, (width - w) / 2)
        y = {"top": pad, "bottom": rows - pad - px * 1.2}.get(edge, (rows - px) / 2)
        draw.text(
            (x, y),
            letter,
            font=fnt,
            fill=(255, 255, 255),
            stroke_width=max(1, px // 12),
            stroke_fill=(0, 0, 0),
        )


def fit_text(draw: ImageDraw.ImageDraw, text: str, fnt: ImageFont.ImageFont, width: float) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    text = printable(text, fnt)
    if draw.textlength(text, font=fnt) <= width:
        return text
    ellipsis = printable("\u2026", fnt)
    for cut in range(len(text) - 1, 0, -1):
        candidate = text[:cut].rstrip() + ellipsis
        if draw.textlength(candidate, font=fnt) <= width:
            return candidate
    return ""


def compose(
    image_rgb: np.ndarray,
    lines: list[tuple[str, tuple[int, int, int], bool]],
    legend: bool,
    floor: float,
    markers: dict[str, str] | None = None,
) -> np.ndarray:
    """Image on top (with R/L ``markers`` burned in at its edges); below it a dark band
    with ``lines`` and (optionally) a legend row."""
    rows, width, _ = image_rgb.shape
    size = text_size(width)
    pad = margin(width)
    canvas = Image.new("RGB", (width, rows + panel_height(width, len(lines), legend)), PANEL_BG)
    canvas.paste(Image.fromarray(image_rgb, mode="RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    if markers:
        draw_side_markers(draw, (width, rows), markers)
    y = rows + pad
    for text, colour, bold in lines:
        fnt = font(size, bold)
        draw.text((pad, y), fit_text(draw, text, fnt, width - 2 * pad), font=fnt, fill=colour)
        y += math.ceil(size * 1.25)
    if legend:
        fnt = font(max(11, size - 2))
        caption = printable("Heatmap:", fnt)
        draw.text((pad, y + 1), caption, font=fnt, fill=MUTED)
        x0 = pad + round(draw.textlength(caption, font=fnt)) + pad
        x1 = min(width - pad, x0 + max(120, width // 3))
        draw_legend(draw, (x0, y + 2, x1, y + math.ceil(size * 2.2)), floor, size)
    return np.asarray(canvas, dtype=np.uint8)
