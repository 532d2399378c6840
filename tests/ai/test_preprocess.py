"""Each preprocessing step against hand-computed values on tiny synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from ai.manifest import InputSpec, NormalizeSpec, PreprocessSpec, WindowSpec
from ai.preprocess import (
    PreprocessError,
    crop_heatmap,
    invert_if_monochrome1,
    letterbox_geometry,
    modality_lut,
    normalize,
    preprocess_frame,
    resize,
    to_channels,
    voi,
    window_linear,
)


def _ds(**kw) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 12
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_modality_rescale_slope_intercept():
    ds = _ds(RescaleSlope=2, RescaleIntercept=-1024)
    out = modality_lut(np.array([[0, 10], [512, 1000]], np.uint16), ds)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[-1024, -1004], [0, 976]])


def test_modality_lut_sequence():
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]  # 4 entries, first mapped value 0, 16 bits
    item.ModalityLUTType = "US"
    item.LUTData = [100, 200, 300, 400]
    ds = _ds(ModalityLUTSequence=[item])
    out = modality_lut(np.array([[0, 1], [3, 9]], np.uint16), ds)
    # values past the table's end clamp to its last entry
    np.testing.assert_array_equal(out, [[100, 200], [400, 400]])


def test_no_modality_transform_is_identity():
    out = modality_lut(np.array([[7]], np.uint16), _ds())
    np.testing.assert_array_equal(out, [[7.0]])


def test_window_linear_hand_values():
    # c=100, w=11: lower edge c-0.5-(w-1)/2 = 94.5, upper c-0.5+(w-1)/2 = 104.5
    x = np.array([90, 94.5, 99.5, 104.5, 120], np.float32)
    out = window_linear(x, 100, 11)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    # LINEAR_EXACT: (x - c)/w + 0.5
    np.testing.assert_allclose(
        window_linear(np.array([95.0, 100, 102.2]), 100, 10, "LINEAR_EXACT"),
        [0.0, 0.5, 0.72],
        atol=1e-6,
    )
    # SIGMOID: 1/(1+exp(-4(x-c)/w)) at x=c is 0.5; at x=c+w/4 is 1/(1+e^-1)
    s = window_linear(np.array([100.0, 102.5]), 100, 10, "SIGMOID")
    np.testing.assert_allclose(s, [0.5, 1 / (1 + np.exp(-1))], atol=1e-6)


def test_voi_from_dataset_window_multi_value_takes_first():
    ds = _ds(WindowCenter=[40, 400], WindowWidth=[81, 2000])
    out = voi(np.array([-0.5, 39.5, 79.5]), ds, WindowSpec(source="dataset"))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0], atol=1e-6)


def test_voi_lut_sequence():
    item = Dataset()
    item.LUTDescriptor = [3, 10, 8]  # 3 entries, first input value 10, 8-bit output
    item.LUTData = [0, 51, 255]
    ds = _ds(VOILUTSequence=[item])
    out = voi(np.array([5.0, 10, 11, 12, 20]), ds, WindowSpec(source="dataset"))
    np.testing.assert_allclose(out, [0, 0, 0.2, 1.0, 1.0], atol=1e-6)


def test_voi_fixed_window_ignores_dataset():
    ds = _ds(WindowCenter=5000, WindowWidth=10)
    out = voi(
        np.array([-1000.5, 0.0, 1000.0]), ds, WindowSpec(source="fixed", center=0, width=2001)
    )
    np.testing.assert_allclose(out, [0.0, 0.5 + 0.5 / 2000, 1.0], atol=1e-6)


def test_voi_minmax_and_dataset_fallback():
    x = np.array([[10.0, 20.0], [30.0, 50.0]])
    expected = [[0, 0.25], [0.5, 1.0]]
    np.testing.assert_allclose(voi(x, _ds(), WindowSpec(source="minmax")), expected)
    # no window in the dataset: falls back to min/max
    np.testing.assert_allclose(voi(x, _ds(), WindowSpec(source="dataset")), expected)


def test_monochrome1_inversion():
    x = np.array([0.0, 0.25, 1.0], np.float32)
    np.testing.assert_allclose(invert_if_monochrome1(x, "MONOCHROME1"), [1.0, 0.75, 0.0])
    np.testing.assert_allclose(invert_if_monochrome1(x, "MONOCHROME2"), x)


def test_channels():
    g = np.array([[0.5]], np.float32)
    assert to_channels(g, 3).shape == (1, 1, 3)
    np.testing.assert_allclose(to_channels(g, 3)[0, 0], [0.5, 0.5, 0.5])
    rgb = np.array([[[1.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(to_channels(rgb, 1)[0, 0], [0.299], atol=1e-6)


def test_letterbox_geometry_and_padding():
    # 2 rows x 4 cols into 4x4: scale 1.0 -> 2x4 placed at row 1
    box = letterbox_geometry(2, 4, 4, 4, "letterbox")
    assert (box.top, box.left, box.height, box.width) == (1, 0, 2, 4)
    x = np.arange(8, dtype=np.float32).reshape(2, 4, 1)
    out, box = resize(x, 4, 4, "letterbox")
    np.testing.assert_array_equal(
        out[..., 0], [[0, 0, 0, 0], [0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 0, 0]]
    )
    # tall 8x2 into 4x4: scale 0.5 -> 4x1, centred column 1
    box = letterbox_geometry(8, 2, 4, 4, "letterbox")
    assert (box.top, box.left, box.height, box.width) == (0, 1, 4, 1)
    assert letterbox_geometry(8, 2, 4, 4, "stretch") == type(box)(0, 0, 4, 4)


def test_resize_downscale_of_constant_is_constant():
    out, _ = resize(np.full((10, 6, 1), 0.3, np.float32), 5, 5, "letterbox")
    box = letterbox_geometry(10, 6, 5, 5, "letterbox")
    inside = out[box.top : box.top + box.height, box.left : box.left + box.width, 0]
    np.testing.assert_allclose(inside, 0.3, atol=1e-6)


def test_normalize():
    x = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    spec = NormalizeSpec(scale=2.0, offset=-1.0, mean=[0.0, 0.5, 1.0], std=[1.0, 2.0, 0.5])
    np.testing.assert_allclose(normalize(x, spec)[0, 0], [-1.0, -0.25, 0.0])


@pytest.mark.parametrize(
    "photometric,stored,expected",
    [
        # MONOCHROME2: 0 dark -> 0; 4095 bright -> 1
        ("MONOCHROME2", [[0, 4095]], [[-1.0, 1.0]]),
        # MONOCHROME1: stored 0 is displayed white -> 1 after inversion
        ("MONOCHROME1", [[0, 4095]], [[1.0, -1.0]]),
    ],
)
def test_full_chain_monochrome(photometric, stored, expected):
    ds = _ds(
        PhotometricInterpretation=photometric,
        RescaleSlope=1,
        RescaleIntercept=0,
        WindowCenter=2048,
        WindowWidth=4096,
    )
    inp = InputSpec(name="x", layout="NCHW", height=1, width=2, channels=1)
    spec = PreprocessSpec(
        window=WindowSpec(source="dataset"),
        resize="letterbox",
        normalize=NormalizeSpec(scale=2.0, offset=-1.0),
    )
    prep = preprocess_frame(np.array(stored, np.uint16), ds, spec, inp)
    assert prep.tensor.shape == (1, 1, 2)
    np.testing.assert_allclose(prep.tensor[0], expected, atol=1e-3)


def test_full_chain_rgb_nhwc():
    ds = _ds(PhotometricInterpretation="RGB", BitsStored=8, SamplesPerPixel=3)
    inp = InputSpec(name="x", layout="NHWC", height=1, width=1, channels=3)
    prep = preprocess_frame(np.array([[[255, 0, 51]]], np.uint8), ds, PreprocessSpec(), inp)
    np.testing.assert_allclose(prep.tensor, [[[1.0, 0.0, 0.2]]], atol=1e-6)


def test_unsupported_photometric_is_a_clear_error():
    ds = _ds(PhotometricInterpretation="PALETTE COLOR")
    inp = InputSpec(name="x", height=2, width=2)
    with pytest.raises(PreprocessError, match="PALETTE COLOR"):
        preprocess_frame(np.zeros((2, 2), np.uint8), ds, PreprocessSpec(), inp)


def test_crop_heatmap_removes_padding():
    cam = np.zeros((4, 4), np.float32)
    cam[1:3, :] = 0.7  # the field of view of a 2x4 source in a 4x4 input
    box = letterbox_geometry(2, 4, 4, 4, "letterbox")
    out = crop_heatmap(cam, box, 4, 4)
    assert out.shape == (2, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.7)
