"""Drawing on the result images: burned-in text, colour legend, R/L markers, layout.

Fonts and colours, and the composition of image and text band; the pixels come from
:mod:`sr_writer.display`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sr_writer.display import overlay_lut

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


def panel_height(width: int, lines: int, legend: bool) -> int:
    """Height of the text band under the image for ``lines`` lines (+ legend row)."""
    size = text_size(width)
    rows = math.ceil(size * 1.25) * lines + (math.ceil(size * 2.2) if legend else 0)
    return rows + 2 * margin(width)


def text_size(width: int) -> int:
    """Font size that stays readable on both small and capped large outputs."""
    return max(12, min(28, round(width / 40)))


def margin(width: int) -> int:
    """Return the text margin, in pixels, for an image ``width`` pixels wide."""
    return max(6, round(width / 64))


def draw_legend(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], floor: float, size: int
) -> None:
    """Draw a horizontal 0..1 colour bar with tick labels inside ``box`` (x0, y0, x1, y1).

    Grey below ``floor`` (left untinted), the overlay's colours above it.
    """
    x0, y0, x1, y1 = box
    fnt = font(max(11, size - 3))
    label_h = size
    bar_h = max(6, (y1 - y0) - label_h - 4)
    colour, _alpha = overlay_lut(float(floor))
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
    """Break ``text`` at spaces into lines that fit ``width`` pixels.

    A word longer than a line is cut with an ellipsis.
    """
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
    """Map each edge ("left", "right", "top", "bottom") to the patient's R/L letter.

    From Patient Orientation (PS3.3 C.7.6.1.1.1: the first value is the direction of
    the rows, towards the right edge; the second of the columns, towards the bottom).
    Only an axis whose main direction is R or L gets markers.
    """
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
    """Burn the R/L letters in at the middle of the image edges they name.

    White with a dark outline, so they read on any anatomy.
    """
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
    """Compose the image (with R/L ``markers`` at its edges) over a dark text band.

    The band holds ``lines`` and, optionally, a legend row.
    """
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
