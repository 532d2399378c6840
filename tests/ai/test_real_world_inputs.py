"""What a model accepts is decided from its manifest before any work: real-world files."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut

from tests.support.corpus import open_model


def _file(name: str):
    path = get_testdata_file(name)
    assert path is not None, f"{name} not found: is pydicom-data installed?"
    return dcmread(path)


@pytest.fixture(scope="module")
def any_photometric(tmp_path_factory: pytest.TempPathFactory):
    registry, model = open_model(tmp_path_factory.mktemp("any"))
    yield model
    registry.close()


@pytest.fixture(scope="module")
def greyscale_only(tmp_path_factory: pytest.TempPathFactory):
    registry, model = open_model(
        tmp_path_factory.mktemp("grey"), photometric=["MONOCHROME1", "MONOCHROME2"]
    )
    yield model
    registry.close()


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "OBXXXX1A.dcm", "US1_J2KR.dcm"])
def test_greyscale_model_skips_colour_early(greyscale_only, name: str) -> None:
    ok, reason = greyscale_only.applies_to(_file(name))
    assert not ok
    assert "PhotometricInterpretation" in reason and "MONOCHROME2" in reason


@pytest.mark.parametrize(
    "name", ["SC_rgb.dcm", "OBXXXX1A.dcm", "US1_J2KR.dcm", "SC_ybr_full_uncompressed.dcm"]
)
def test_model_accepting_colour_infers_it(any_photometric, name: str) -> None:
    ds = _file(name)
    assert any_photometric.applies_to(ds) == (True, "")
    (result,) = any_photometric.infer(ds)
    assert all(0.0 <= label.probability <= 1.0 for label in result.labels)


@pytest.mark.parametrize("name", ["liver_1frame.dcm", "rtdose_1frame.dcm"])
def test_non_images_are_skipped_with_a_reason(any_photometric, name: str) -> None:
    ok, reason = any_photometric.applies_to(_file(name))
    assert not ok
    assert "not an image" in reason


def test_palette_is_not_treated_as_greyscale(any_photometric) -> None:
    """The palette's colours, not its indices, reach the model."""
    from ai.preprocess import preprocess_frame

    ds = _file("OBXXXX1A.dcm")
    spec, inp = any_photometric.manifest.preprocess, any_photometric.manifest.input
    prepared = preprocess_frame(ds.pixel_array, ds, spec, inp)
    palette = apply_color_lut(ds.pixel_array, ds)
    rgb = palette.astype(np.float32) / float(np.iinfo(palette.dtype).max)
    lum = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    # normalize: x * 2048 - 1024, / 1024 -> x = tensor * 0.5 + 0.5; compare means
    x = prepared.tensor * 0.5 + 0.5
    box = prepared.box
    inside = x[0, box.top : box.top + box.height, box.left : box.left + box.width]
    assert abs(float(inside.mean()) - float(lum.mean())) < 0.02
