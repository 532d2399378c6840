"""Decoding of every compressed syntax whose test file ships with pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from ai.decode import DecodeError, decode_frames, iter_frames
from ai.manifest import InputSpec, PreprocessSpec
from ai.preprocess import preprocess_frame


def _read(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name, download=False)  # only files shipped in the wheel
    if path is None:
        pytest.skip(f"pydicom test file {name} is not shipped in this install")
    return pydicom.dcmread(path)


# (compressed file, uncompressed reference or None, exact?)
LOSSLESS = [
    ("MR_small_RLE.dcm", "MR_small.dcm"),  # RLE Lossless
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),  # JPEG 2000 lossless
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS lossless
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG lossless P14 SV1, RGB
    ("rtdose_rle.dcm", "rtdose.dcm"),  # RLE multi-frame (15)
    ("rtdose_rle.dcm", "rtdose_expb.dcm"),  # vs big endian original
]


@pytest.mark.parametrize("compressed,reference", LOSSLESS)
def test_lossless_syntaxes_decode_exactly(compressed, reference):
    got = decode_frames(_read(compressed))
    want = decode_frames(_read(reference))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


LOSSY = [
    ("JPEG2000.dcm", 1, (1024, 256)),  # JPEG 2000 (lossy-capable syntax)
    ("SC_rgb_jpeg_dcmtk.dcm", 1, (100, 100, 3)),  # JPEG baseline, YBR_FULL
    ("JPGExtended.dcm", 1, (1024, 256)),  # JPEG extended 12-bit
    ("JPEGLSNearLossless_16.dcm", 1, None),  # JPEG-LS near-lossless
    ("examples_ybr_color.dcm", 30, (240, 320, 3)),  # JPEG baseline multi-frame
]


@pytest.mark.parametrize("name,frames,shape", LOSSY)
def test_lossy_syntaxes_decode(name, frames, shape):
    ds = _read(name)
    arr = decode_frames(ds)
    assert arr.shape[0] == frames
    assert arr.shape[1:3] == (ds.Rows, ds.Columns)
    if shape:
        assert arr.shape[1:] == shape
    assert float(arr.std()) > 0  # real image content, not zeros


def test_rle_rgb_multiframe_frames_are_the_single_frame_image():
    two = decode_frames(_read("SC_rgb_rle_2frame.dcm"))
    one = decode_frames(_read("SC_rgb_rle.dcm"))
    assert two.shape == (2, 100, 100, 3)
    np.testing.assert_array_equal(two[0], one[0])


def test_undecodable_jpeg_names_the_syntax():
    # pydicom ships this 12-bit JPEG Extended file as one only GDCM can decode: with the
    # pylibjpeg plugins the error must name the syntax; with GDCM it simply decodes.
    ds = _read("JPEG-lossy.dcm")
    try:
        arr = decode_frames(ds)
    except DecodeError as exc:
        assert "JPEG Extended" in str(exc)
    else:
        assert arr.shape == (1, ds.Rows, ds.Columns)


def test_jpeg_baseline_close_to_lossless_original():
    got = decode_frames(_read("SC_rgb_jpeg_dcmtk.dcm")).astype(float)
    want = decode_frames(_read("SC_rgb_rle.dcm")).astype(float)
    assert np.abs(got - want).mean() < 8  # lossy but the same picture


def test_jpegls_near_lossless_close_to_reference():
    near = decode_frames(_read("JPEGLSNearLossless_16.dcm")).astype(float)
    assert np.isfinite(near).all() and near.max() > near.min()


def test_iter_frames_numbers_multiframe_from_one():
    frames = [f for f, _ in iter_frames(_read("rtdose.dcm"))]
    assert frames == list(range(1, 16))
    single = [f for f, _ in iter_frames(_read("CT_small.dcm"))]
    assert single == [None]


@pytest.mark.parametrize(
    "name",
    ["MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm", "rtdose_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm"],
)
def test_decoded_frames_preprocess(name):
    ds = _read(name)
    inp = InputSpec(name="x", height=32, width=32, channels=1)
    for _, frame in iter_frames(ds):
        prep = preprocess_frame(frame, ds, PreprocessSpec(), inp)
        assert prep.tensor.shape == (1, 32, 32)
        assert np.isfinite(prep.tensor).all()


def test_missing_pixel_data_is_a_clear_error():
    ds = pydicom.Dataset()
    with pytest.raises(DecodeError, match="no PixelData"):
        decode_frames(ds)


def test_corrupt_pixel_data_is_a_clear_error():
    ds = _read("MR_small_RLE.dcm")
    ds.PixelData = ds.PixelData[:200]
    with pytest.raises(DecodeError, match="RLE Lossless"):
        decode_frames(ds)
