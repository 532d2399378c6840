"""A Deflated file read whole only within what its image attributes allow
(``dicom_node.store.inflate.read_deflated``, the job path's reader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicom_node import synthetic
from dicom_node.index.header import INFLATE_MAX
from dicom_node.store.inflate import InflatesTooFar, read_deflated


def _deflated(path: Path, rows: int, cols: int, extra: int = 0) -> np.ndarray:
    """A Deflated CR of ``rows`` x ``cols`` (a compressible gradient) whose Pixel Data
    holds ``extra`` bytes more than its attributes say; returns its pixels."""
    ds = synthetic.make_cr(rows=8, cols=8, seed=3)
    ds.Rows, ds.Columns = rows, cols
    pixels = (np.add.outer(np.arange(rows), np.arange(cols)) % 4096).astype(np.uint16)
    ds.PixelData = pixels.tobytes() + bytes(extra)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return pixels


def test_an_image_larger_than_the_header_cap_is_read_whole(tmp_path: Path) -> None:
    """17 MB of pixels: past INFLATE_MAX, so the cap comes from its attributes."""
    path = tmp_path / "big.dcm"
    pixels = _deflated(path, 2944, 2944)
    assert pixels.nbytes > INFLATE_MAX
    ds = read_deflated(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (ds.pixel_array == pixels).all()


def test_a_little_more_than_the_pixels_is_read(tmp_path: Path) -> None:
    """Other elements (here, padding in Pixel Data) within INFLATE_MAX are room allowed."""
    path = tmp_path / "padded.dcm"
    _deflated(path, 64, 64, extra=INFLATE_MAX // 2)
    assert len(read_deflated(path).PixelData) == 64 * 64 * 2 + INFLATE_MAX // 2


def test_past_the_pixels_and_the_room_it_stops(tmp_path: Path) -> None:
    path = tmp_path / "bomb.dcm"
    _deflated(path, 64, 64, extra=INFLATE_MAX + 2 * 2**20)
    with pytest.raises(InflatesTooFar, match="8,192 bytes of pixels and 16 MB"):
        read_deflated(path)
