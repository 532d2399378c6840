"""The findings card: one SC that lists every finding, for PACS that cannot show TID 1500."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from sr_writer import render
from sr_writer.common import caution_line
from sr_writer.inputs import ImageResult
from sr_writer.options import DEMO_NOTICE, WriteOptions
from sr_writer.sc_common import build_sc
from sr_writer.uids import ResultUIDs

CARD_WIDTH = 1024


@dataclass(frozen=True)
class CardRow:
    """One label summarised over every analysed image."""

    finding: str
    code: str
    probability: float  # the highest over the images
    threshold: float
    positive_images: int
    images: int


def summarise(results: Sequence[ImageResult]) -> list[CardRow]:
    """One row per label (first-seen order), its highest probability and decision."""
    rows: dict[str, list] = {}
    for result in results:
        for label in result.labels:
            entry = rows.setdefault(label.name, [label, 0.0, 0, 0])
            entry[1] = max(entry[1], float(label.probability))
            entry[2] += int(label.positive)
            entry[3] += 1
    return [
        CardRow(
            finding=label.code.meaning,
            code=f"{label.code.scheme} {label.code.value}",
            probability=prob,
            threshold=float(label.threshold),
            positive_images=pos,
            images=n,
        )
        for label, prob, pos, n in rows.values()
    ]


def demo_sentence() -> str:
    """Return the card's full statement for a demo model."""
    return (
        f"{DEMO_NOTICE}. These findings come from a demonstration model, carry no "
        "diagnostic meaning and must not be used for patient care."
    )


def render_card(
    results: Sequence[ImageResult], options: WriteOptions, study_line: str
) -> np.ndarray:
    """Draw the card as an RGB uint8 array (long lines are wrapped, never cut)."""
    model = results[0].model
    rows = summarise(results)
    size, pad = 24, 28
    line = round(size * 1.6)
    small_line = round(line * 0.8)
    text_width = CARD_WIDTH - 2 * pad
    title, body, small = render.font(size + 6, True), render.font(size), render.font(size - 6)
    bold = render.font(size, True)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # (text, font, colour, line height) for every line above the table.
    head: list[tuple[str, ImageFont.ImageFont, tuple[int, int, int], int]] = []
    if model.demo:
        head += [
            (t, bold, render.CAUTION, line)
            for t in render.wrap_text(probe, demo_sentence(), bold, text_width)
        ]
    head += [
        (t, bold, render.CAUTION, line)
        for t in render.wrap_text(probe, caution_line(model, options), bold, text_width)
    ]
    for text in (
        f"Model: {model.name} {model.version} \u2014 {model.manufacturer}",
        f"Intended use: {model.intended_use}",
        study_line,
    ):
        head += [
            (t, small, render.MUTED, small_line)
            for t in render.wrap_text(probe, text, small, text_width)
        ]
    height = pad * 2 + line + 8 + sum(h for *_, h in head) + line * (3 + len(rows)) + line * 3
    img = Image.new("RGB", (CARD_WIDTH, height), render.PANEL_BG)
    draw = ImageDraw.Draw(img)
    y = pad
    draw.text(
        (pad, y), render.printable("AI findings summary", title), font=title, fill=render.TEXT
    )
    y += line + 8
    for text, fnt, colour, step in head:
        draw.text((pad, y), text, font=fnt, fill=colour)
        y += step
    y += line // 2
    columns = (pad, 470, 640, 790)
    for x, heading in zip(columns, ("Finding", "Probability", "Threshold", "Result"), strict=True):
        draw.text((x, y), heading, font=bold, fill=render.TEXT)
    y += line
    draw.line([(pad, y - 6), (CARD_WIDTH - pad, y - 6)], fill=render.MUTED)
    many = len(results) > 1
    for row in rows:
        positive = row.positive_images > 0
        colour = render.POSITIVE if positive else render.NEGATIVE
        result = "POSITIVE" if positive else "negative"
        if many:
            result += f" ({row.positive_images}/{row.images})"
        cells = (
            render.fit_text(draw, row.finding, body, columns[1] - columns[0] - 12),
            f"{row.probability:.2f}",
            f"{row.threshold:.2f}",
            result,
        )
        for x, cell in zip(columns, cells, strict=True):
            draw.text(
                (x, y),
                cell,
                font=bold if positive else body,
                fill=colour if x == columns[3] else render.TEXT,
            )
        y += line
    y += line // 2
    note = (
        "Probability: highest over the analysed images; POSITIVE when at or above the threshold."
        if many
        else "POSITIVE when the probability is at or above the threshold."
    )
    for text in render.wrap_text(draw, note, small, text_width):
        draw.text((pad, y), text, font=small, fill=render.MUTED)
        y += small_line
    y += pad
    return np.asarray(img.crop((0, 0, CARD_WIDTH, min(height, y))), dtype=np.uint8)


def build_card(
    sources: Sequence[tuple[Dataset, int | None]],
    header: Dataset,
    results: Sequence[ImageResult],
    *,
    options: WriteOptions,
    uids: ResultUIDs,
    instance_number: int,
    when: dt.datetime,
) -> Dataset:
    """Build the findings card SC, referencing every analysed source image."""
    model = results[0].model
    study = " \u00b7 ".join(
        part
        for part in (
            str(header.get("StudyDescription", "") or ""),
            f"Accession {header.AccessionNumber}" if header.AccessionNumber else "",
            f"{len(results)} image(s) analysed",
        )
        if part
    )
    pixels = render_card(results, options, study)
    return build_sc(
        pixels,
        header,
        sources,
        model=model,
        options=options,
        series_uid=uids.sc_series,
        sop_uid=uids.card_instance,
        instance_number=instance_number,
        when=when,
        orientation=None,
        pixel_spacing=None,
        derivation=f"Summary of the findings of {model.name} {model.version} "
        "(text rendered as an image)",
    )
