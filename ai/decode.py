"""Pixel data decoding: uncompressed and compressed syntaxes (pylibjpeg plugins), multi-frame."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from pydicom.dataset import Dataset


class _PluginFailuresAtDebug(logging.Filter):
    """Move pydicom's per-plugin decoder failures from ERROR to DEBUG.

    pydicom logs each failing decoder plugin at ERROR with a traceback; the reason
    reaches the caller in one line (DecodeError), so those records go to DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


logging.getLogger("pydicom.pixels.decoders.base").addFilter(_PluginFailuresAtDebug())


class DecodeError(ValueError):
    """The pixel data of a dataset could not be decoded; the message names the reason."""


def number_of_frames(ds: Dataset) -> int:
    """Frames in ``ds`` (1 when NumberOfFrames is absent or empty)."""
    value = ds.get("NumberOfFrames", 1)
    try:
        return max(int(value or 1), 1)
    except (TypeError, ValueError):
        return 1


def decode_frames(ds: Dataset) -> np.ndarray:
    """Decode the stored values of every frame.

    Colour images come back as RGB (pydicom converts YBR to RGB by default).

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A dataset with Pixel Data (or Float Pixel Data).

    Returns
    -------
    numpy.ndarray
        Shape (frames, rows, cols[, samples]).

    Raises
    ------
    DecodeError
        No pixel data, or no installed decoder can read it (the message names the
        transfer syntax and pydicom's reason).
    """
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise DecodeError("dataset has no PixelData")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for bad/unsupported pixel data
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        name = getattr(ts, "name", "") or ts
        reason = " ".join(str(exc).split())  # pydicom lists each plugin on its own line
        raise DecodeError(f"cannot decode PixelData ({name}, {ts}): {reason}") from exc
    samples = int(ds.get("SamplesPerPixel", 1))
    frames = number_of_frames(ds)
    if frames == 1 or (samples == 1 and arr.ndim == 2) or (samples > 1 and arr.ndim == 3):
        arr = arr[np.newaxis, ...]
    return arr


def iter_frames(ds: Dataset) -> Iterator[tuple[int | None, np.ndarray]]:
    """Yield each decoded frame with its number.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A dataset with pixel data.

    Yields
    ------
    tuple of (int or None, numpy.ndarray)
        The 1-based frame number (``None`` for a single-frame image) and its stored
        values.

    Raises
    ------
    DecodeError
        As :func:`decode_frames`.
    """
    arr = decode_frames(ds)
    multi = number_of_frames(ds) > 1
    for i in range(arr.shape[0]):
        yield (i + 1 if multi else None), arr[i]
