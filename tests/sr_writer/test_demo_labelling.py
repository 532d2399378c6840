"""Results of a demo model say "NON-CLINICAL DEMO — untrained weights" where a reader
sees them: the SR's algorithm identification and a TEXT comment, a burned-in line on
every heatmap SC, and a full, wrapped sentence on the findings card."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from PIL import Image, ImageDraw

from sr_writer import WriteOptions, display, render
from sr_writer.findings_card import demo_sentence
from sr_writer.options import DEMO_NOTICE

from .support import MODEL, SOURCES, WHEN, needs_dcmtk, result_for, save, write

CLINICAL = dataclasses.replace(MODEL, demo=False)


def _objects(model):
    sources = SOURCES["cr"]()
    return write(sources, WriteOptions(created_at=WHEN), [result_for(ds, model) for ds in sources])


def _root_comments(sr) -> list[str]:
    """TEXT values inside the report's root "Qualitative Evaluations" containers."""
    out = []
    for item in sr.ContentSequence:
        name = item.ConceptNameCodeSequence[0]
        if (name.CodeValue, name.CodingSchemeDesignator) == ("C0034375", "UMLS"):
            out += [child.TextValue for child in item.ContentSequence if child.ValueType == "TEXT"]
    return out


def test_demo_sr_says_so_in_a_comment_and_the_algorithm(tmp_path: Path) -> None:
    out = _objects(MODEL)
    (comment,) = _root_comments(out.sr)
    assert comment.startswith(DEMO_NOTICE + ".") and MODEL.intended_use in comment
    # The em dash is kept: the SR is UTF-8 and says so; the file holds UTF-8 bytes.
    assert out.sr.SpecificCharacterSet == "ISO_IR 192"
    path = save(out.sr, tmp_path, "sr")
    assert DEMO_NOTICE.encode("utf-8") in path.read_bytes()
    # UMLS (the container's scheme) is declared.
    schemes = {s.CodingSchemeDesignator: s for s in out.sr.CodingSchemeIdentificationSequence}
    assert schemes["UMLS"].CodingSchemeUID == "2.16.840.1.113883.6.86"
    # highdicom still reads the report, and every group's TID 4019 names the notice.
    groups = hd.sr.srread(path).content.get_image_measurement_groups()
    assert groups
    for group in groups:
        params = [
            i.TextValue
            for i in group[0].ContentSequence
            if i.ConceptNameCodeSequence[0].CodeValue == "111002"
        ]
        assert DEMO_NOTICE in params
    assert "NON-CLINICAL DEMO" in out.sr.SeriesDescription


def test_clinical_sr_has_no_demo_notice() -> None:
    out = _objects(CLINICAL)
    assert _root_comments(out.sr) == []
    assert out.sr.SpecificCharacterSet == "ISO_IR 100"
    assert "UMLS" not in {
        s.CodingSchemeDesignator for s in out.sr.CodingSchemeIdentificationSequence
    }
    assert "DEMO" not in out.sr.SeriesDescription


@needs_dcmtk
def test_dsr2html_shows_the_notice(tmp_path: Path) -> None:
    path = save(_objects(MODEL).sr, tmp_path, "sr")
    html = subprocess.run(["dsr2html", str(path)], capture_output=True, timeout=60)
    assert html.returncode == 0
    text = html.stdout.decode("utf-8")
    assert "Qualitative Evaluations" in text
    assert text.count(DEMO_NOTICE) >= 2  # algorithm parameters and the comment


def _band_rows_in(sc, colour: tuple[int, int, int]) -> int:
    """Rows of the text band (below the image area) holding ``colour``."""
    image_rows, _ = display.output_shape(384, 320, 1024)  # SOURCES["cr"] is 384 x 320
    band = sc.pixel_array[image_rows:]
    hit = np.all(np.abs(band.astype(int) - colour) <= 8, axis=-1)
    return int(hit.any(axis=1).sum())


def test_every_heatmap_burns_in_one_more_caution_line() -> None:
    demo, clinical = _objects(MODEL), _objects(CLINICAL)
    assert demo.heatmaps and len(demo.heatmaps) == len(clinical.heatmaps)
    size = render.text_size(demo.heatmaps[0].Columns)
    for d, c in zip(demo.heatmaps, clinical.heatmaps, strict=True):
        # One more text line in the band, drawn in the caution colour.
        assert d.Rows - c.Rows == int(np.ceil(size * 1.25))
        assert _band_rows_in(d, render.CAUTION) > _band_rows_in(c, render.CAUTION)
        assert "DEMO" in d.SeriesDescription


def test_card_states_the_notice_as_a_full_wrapped_sentence() -> None:
    sentence = demo_sentence()
    assert sentence.startswith(DEMO_NOTICE + ".") and sentence.endswith(".")
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    fnt = render.font(24, True)
    lines = render.wrap_text(draw, sentence, fnt, 1024 - 56)
    assert len(lines) > 1
    assert " ".join(lines) == sentence  # every word kept, nothing cut
    assert all(draw.textlength(line, font=fnt) <= 1024 - 56 for line in lines)
    demo, clinical = _objects(MODEL), _objects(CLINICAL)
    # The demo card is taller by the wrapped sentence; both keep the intended use whole.
    assert demo.card.Rows - clinical.card.Rows >= len(lines) * round(24 * 1.6)


@pytest.mark.parametrize("width", [200, 400, 968])
def test_wrap_text_never_drops_words(width: int) -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    fnt = render.font(18)
    text = MODEL.intended_use + " " + ("word " * 40).strip()
    lines = render.wrap_text(draw, text, fnt, width)
    assert " ".join(lines) == " ".join(text.split())
    assert all(draw.textlength(line, font=fnt) <= width for line in lines)
