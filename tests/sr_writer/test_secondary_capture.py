"""Heatmap SC and findings card: attributes, rendering, selection, bounded size."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.synthetic import iter_ct_series, make_cr, make_dx
from sr_writer import ImageResult, WriteOptions
from sr_writer.display import output_shape, window_for_display

from .support import MODEL, SOURCES, WHEN, blob, labels, result_for, write


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_heatmap_sc_attributes(kind: str) -> None:
    sources = SOURCES[kind]()
    out = write(sources)
    assert len(out.heatmaps) == len(sources)  # one positive label with a heatmap each
    for sc, src in zip(out.heatmaps, sources, strict=True):
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert sc.Modality == "OT"
        assert sc.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert (
            sc.SamplesPerPixel,
            sc.PhotometricInterpretation,
            sc.BitsAllocated,
            sc.BitsStored,
        ) == (3, "RGB", 8, 8)
        assert list(sc.ImageType) == ["DERIVED", "SECONDARY"]
        assert sc.BurnedInAnnotation == "YES"
        assert sc.StudyInstanceUID == src.StudyInstanceUID
        assert sc.SeriesInstanceUID not in (src.SeriesInstanceUID, out.sr.SeriesInstanceUID)
        (ref,) = sc.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == src.SOPClassUID
        purpose = ref.PurposeOfReferenceCodeSequence[0]
        assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == ("121322", "DCM")
        if "PatientOrientation" in src:
            assert list(sc.PatientOrientation) == list(src.PatientOrientation)
        else:  # CT: derived from Image Orientation (Patient) [1,0,0,0,1,0]
            assert list(sc.PatientOrientation) == ["L", "P"]
        # Small sources are shown enlarged to 512 (longest side); spacing follows.
        rows, cols = output_shape(src.Rows, src.Columns, 1024)
        assert max(rows, cols) == 512
        assert sc.Columns == cols and sc.Rows > rows  # text band below the image
        assert [float(v) for v in sc.PixelSpacing] == pytest.approx(
            [
                float(src.PixelSpacing[0]) * src.Rows / rows,
                float(src.PixelSpacing[1]) * src.Columns / cols,
            ],
            rel=1e-6,
        )
        assert sc.pixel_array.shape == (sc.Rows, sc.Columns, 3)


def test_card_lists_and_references_everything() -> None:
    sources = SOURCES["ct"]()
    out = write(sources)
    card = out.card
    refs = [r.ReferencedSOPInstanceUID for r in card.SourceImageSequence]
    assert refs == [ds.SOPInstanceUID for ds in sources]
    assert card.BurnedInAnnotation == "YES" and card.SamplesPerPixel == 3
    assert card.PatientOrientation is None or card.PatientOrientation == ""
    assert "PixelSpacing" not in card
    pixels = card.pixel_array
    assert pixels.std() > 10  # text was drawn


def test_heatmap_selection_modes() -> None:
    sources = SOURCES["ct"]()  # pneumothorax 0.83, 0.73, 0.63: positive on all
    top = write(sources, WriteOptions(created_at=WHEN, heatmaps="top"))
    assert len(top.heatmaps) == 3
    positive = write(sources, WriteOptions(created_at=WHEN, heatmaps="positive"))
    assert len(positive.heatmaps) == 3  # only pneumothorax is positive
    both = [
        ImageResult(
            str(sources[0].SOPInstanceUID), None, MODEL, labels(pneumothorax=0.9, effusion=0.7)
        )
    ]
    two = write(sources[:1], WriteOptions(created_at=WHEN, heatmaps="positive"), both)
    assert len(two.heatmaps) == 2
    assert len({sc.SOPInstanceUID for sc in two.heatmaps}) == 2
    key = write(sources, WriteOptions(created_at=WHEN, max_heatmap_images=1))
    (only,) = key.heatmaps
    assert only.SourceImageSequence[0].ReferencedSOPInstanceUID == sources[0].SOPInstanceUID
    none = write(sources, WriteOptions(created_at=WHEN, heatmaps="none", findings_card=False))
    assert none.heatmaps == [] and none.card is None


def test_heatmap_is_drawn_where_the_model_says() -> None:
    ds = make_cr(rows=512, cols=512)
    hot = blob(n=14, cy=0.2, cx=0.8, sigma=0.08)  # upper right of the image
    result = ImageResult(
        str(ds.SOPInstanceUID),
        None,
        MODEL,
        (labels()[0].__class__("pneumothorax", labels()[0].code, 0.9, 0.5, True, hot),),
    )
    out = write([ds], results=[result])
    rgb = out.heatmaps[0].pixel_array[:512].astype(np.int16)
    colour = np.abs(rgb[..., 0] - rgb[..., 2])  # grey pixels have R == B
    ys, xs = np.nonzero(colour > 30)
    assert len(ys) > 100
    assert ys.mean() / 512 == pytest.approx(0.2, abs=0.08)
    assert xs.mean() / 512 == pytest.approx(0.8, abs=0.08)
    # Far from the blob the source shows through untinted.
    assert colour[380:, :130].max() <= 2


def test_monochrome1_displays_like_monochrome2() -> None:
    """The same phantom stored inverted (MONOCHROME1) must render the same way."""
    m1 = make_dx(rows=128, cols=128, photometric="MONOCHROME1")
    m2 = make_dx(rows=128, cols=128, photometric="MONOCHROME2")
    a = window_for_display(m1, None, (128, 128))
    b = window_for_display(m2, None, (128, 128))
    assert np.abs(a - b).max() < 1e-3
    assert b.std() > 0.1  # not a flat image


def test_ct_uses_its_hu_window() -> None:
    ct = next(iter_ct_series(1, rows=128, cols=128))
    shown = window_for_display(ct, None, (128, 128))
    assert shown[0, 0] == 0.0  # air (-1000 HU) below a 40/400 window: black
    assert 0.3 < float(np.median(shown[48:80, 48:80])) < 0.7  # water-ish body: mid grey


def test_large_source_is_capped_and_bounded_in_memory() -> None:
    ds = make_cr(rows=3000, cols=2500)
    pixels = 3000 * 2500
    results = [result_for(ds)]
    write([make_cr(rows=64, cols=64)])  # first use loads highdicom/pydicom tables
    tracemalloc.start()
    try:
        out = write([ds], WriteOptions(created_at=WHEN, max_output_size=1024), results)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    sc = out.heatmaps[0]
    assert sc.Columns == round(2500 * 1024 / 3000) and sc.Rows > 1024
    assert float(sc.PixelSpacing[0]) == pytest.approx(0.143 * 3000 / 1024, rel=1e-3)
    assert float(sc.PixelSpacing[1]) == pytest.approx(0.143 * 2500 / sc.Columns, rel=1e-3)
    # Decoding the 16-bit stored pixels costs 2 bytes a pixel; everything else must stay
    # below what one full-resolution float32 copy (4 bytes a pixel) would cost.
    assert peak - 2 * pixels < 4 * pixels, f"peak {peak / 1e6:.1f} MB"


def test_caution_line_follows_model_and_option() -> None:
    import dataclasses

    from sr_writer.common import caution_line
    from sr_writer.options import DEFAULT_CAUTION, DEMO_CAUTION

    assert caution_line(MODEL, WriteOptions()) == DEMO_CAUTION
    clinical = dataclasses.replace(MODEL, demo=False)
    assert caution_line(clinical, WriteOptions()) == DEFAULT_CAUTION
    assert caution_line(clinical, WriteOptions(caution="Research only")) == "Research only"
    # The caution line is burned in: changing it changes the pixels, not the UIDs.
    ds = make_cr(rows=256, cols=256)
    a = write([ds], WriteOptions(created_at=WHEN))
    b = write([ds], WriteOptions(created_at=WHEN, caution="Research only"))
    assert a.heatmaps[0].SOPInstanceUID == b.heatmaps[0].SOPInstanceUID
    assert a.heatmaps[0].PixelData != b.heatmaps[0].PixelData


def test_renders_without_dejavu_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fonts-dejavu the bundled Pillow font is used and nothing breaks."""
    from sr_writer import render

    monkeypatch.setattr(render, "FONT_CANDIDATES", ("/nonexistent/font.ttf",))
    monkeypatch.setattr(render, "BOLD_CANDIDATES", ("/nonexistent/font-bold.ttf",))
    render.font.cache_clear()
    try:
        out = write(SOURCES["cr"]())
        assert out.heatmaps[0].pixel_array.std() > 10
        assert out.card.pixel_array.std() > 10
    finally:
        render.font.cache_clear()


def test_one_heatmap_per_positive_finding_up_to_the_cap() -> None:
    ds = make_cr(rows=256, cols=256)
    probs = {"pneumothorax": 0.7, "effusion": 0.9, "cardiomegaly": 0.95}  # all positive
    result = ImageResult(str(ds.SOPInstanceUID), None, MODEL, labels(**probs))
    out = write([ds], WriteOptions(created_at=WHEN), [result])  # default: positive, cap 3
    # cardiomegaly has no heatmap; the two others each get one, most probable first.
    assert [
        sc.DerivationDescription.split("heatmap of ")[1].split(" ")[0] for sc in out.heatmaps
    ] == ["pleural_effusion", "pneumothorax"]
    capped = write([ds], WriteOptions(created_at=WHEN, max_heatmaps_per_image=1), [result])
    (only,) = capped.heatmaps
    assert only.SOPInstanceUID == out.heatmaps[0].SOPInstanceUID
    negative = ImageResult(
        str(ds.SOPInstanceUID),
        None,
        MODEL,
        labels(pneumothorax=0.1, effusion=0.2, cardiomegaly=0.3),
    )
    assert write([ds], WriteOptions(created_at=WHEN), [negative]).heatmaps == []


def test_low_activation_leaves_the_anatomy_untinted() -> None:
    from sr_writer.display import blend

    grey = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    heat = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))
    rgb = blend(grey, heat, opacity=0.5, floor=0.5).astype(np.int16)
    plain = np.round(grey * 255).astype(np.int16)
    below = heat < 0.5 - 1 / 255
    for channel in range(3):  # below the floor: exactly the grey image
        assert np.array_equal(rgb[..., channel][below], plain[below])
    tinted = np.abs(rgb[..., 0] - rgb[..., 2])[heat > 0.6]
    assert tinted.min() > 10  # above it: clearly coloured
    # The faintest colour shown is not the colour map's near-black.
    from sr_writer.display import overlay_lut

    colour, alpha = overlay_lut(0.5)
    first = int(np.argmax(alpha > 0))
    assert colour[first].max() > 0.3


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (("L", "F"), {"left": "R", "right": "L"}),  # frontal chest as displayed
        (("R", "F"), {"left": "L", "right": "R"}),
        (("P", "F"), {}),  # lateral: no right/left axis in the image plane
        (("F", "L"), {"top": "R", "bottom": "L"}),  # rotated by 90 degrees
        (("LP", "F"), {"left": "R", "right": "L"}),  # oblique: main direction L
        (None, {}),
    ],
)
def test_side_markers_follow_patient_orientation(orientation, expected) -> None:
    from sr_writer.render import side_markers

    assert side_markers(orientation) == expected


def test_side_markers_are_burned_in_at_the_image_edges() -> None:
    ds = make_cr(rows=512, cols=512)  # PA chest, Patient Orientation L\F
    quiet = ImageResult(
        str(ds.SOPInstanceUID),
        None,
        MODEL,
        (
            labels()[0].__class__(
                "pneumothorax", labels()[0].code, 0.9, 0.5, True, np.zeros((7, 7), np.float32)
            ),
        ),
    )
    sc = write([ds], results=[quiet]).heatmaps[0]
    assert list(sc.PatientOrientation) == ["L", "F"]
    unknown = ds.copy()
    del unknown.PatientOrientation  # no orientation: no markers
    plain = write([unknown], results=[quiet]).heatmaps[0]
    for image in (sc, plain):
        rgb = image.pixel_array[:512].astype(np.int16)
        white = np.all(rgb >= 250, axis=-1)
        edges = [white[200:312, cols].sum() for cols in (slice(0, 60), slice(452, 512))]
        if image is sc:  # a white letter at the middle of each side edge
            assert min(edges) > 50
        else:
            assert max(edges) < 10
    assert "right/left marked" in sc.DerivationDescription
    assert "right/left marked" not in plain.DerivationDescription


def test_synthetic_frontal_chests_are_stored_as_displayed() -> None:
    for make in (make_cr, make_dx):
        for view in ("PA", "AP"):
            assert list(make(rows=64, cols=64, view=view).PatientOrientation) == ["L", "F"]
