"""DICOM-aware preprocessing: Modality LUT, VOI LUT / window, MONOCHROME1, letterbox, normalise.

Every step is a small pure function on numpy arrays so that each can be tested against
hand-computed values; :func:`preprocess_frame` chains them as the manifest says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi

from ai.manifest import InputSpec, NormalizeSpec, PreprocessSpec, WindowSpec

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# Colour the decoder hands over as RGB, and palettes applied here.
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
SUPPORTED_PHOTOMETRIC = (*MONOCHROME, *COLOUR, "PALETTE COLOR")


class PreprocessError(ValueError):
    """A frame cannot be turned into the model's input; the message names the field."""


@dataclass(frozen=True)
class Letterbox:
    """Where the source field of view lies inside the model input (pixels of the input)."""

    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class Prepared:
    """A model-ready tensor for one frame (no batch axis) and its letterbox geometry."""

    tensor: np.ndarray
    box: Letterbox


def modality_lut(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Apply the Modality LUT (LUT sequence or rescale slope/intercept) -> float32."""
    slope, intercept = ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
    identity = (
        "ModalityLUTSequence" not in ds
        and float(slope if slope not in (None, "") else 1) == 1.0
        and float(intercept if intercept not in (None, "") else 0) == 0.0
    )
    if not identity:
        try:
            out = apply_modality_lut(stored, ds)
        except Exception as exc:
            raise PreprocessError(f"Modality LUT: {exc}") from exc
        return np.asarray(out, dtype=np.float32)
    return stored.astype(np.float32)


def _first(value: object) -> float:
    if (
        isinstance(value, list | tuple)
        or hasattr(value, "__getitem__")
        and not isinstance(value, str | bytes)
    ):
        value = value[0]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def window_linear(
    x: np.ndarray, center: float, width: float, function: str = "LINEAR"
) -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1].

    LINEAR: ``((x - (c - 0.5)) / (w - 1) + 0.5)`` clipped; LINEAR_EXACT: ``(x - c) / w + 0.5``;
    SIGMOID: ``1 / (1 + exp(-4 (x - c) / w))``.
    """
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))).astype(np.float32)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise PreprocessError(f"WindowWidth {width} must be > 0 for LINEAR_EXACT")
        y = (x - center) / width + 0.5
    else:
        if width < 1:
            raise PreprocessError(f"WindowWidth {width} must be >= 1")
        if width == 1:
            return (x > center - 0.5).astype(np.float32)
        y = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def window_minmax(x: np.ndarray) -> np.ndarray:
    """Map the frame's own value range linearly to [0, 1]."""
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def voi(x: np.ndarray, ds: Dataset, spec: WindowSpec) -> np.ndarray:
    """Apply the VOI transform the manifest chose, producing values in [0, 1].

    ``dataset``: the dataset's VOI LUT Sequence, else its first window, else min/max.
    ``fixed``: the manifest's window. ``minmax``: the frame's range.
    """
    if spec.source == "fixed":
        return window_linear(x, float(spec.center), float(spec.width))  # type: ignore[arg-type]
    if spec.source == "dataset":
        if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
            item = ds.VOILUTSequence[0]
            try:
                out = apply_voi(np.rint(x).astype(np.int64), ds, index=0)
                bits = int(item.LUTDescriptor[2])
            except Exception as exc:
                raise PreprocessError(f"VOILUTSequence[0]: {exc}") from exc
            return np.clip(np.asarray(out, np.float32) / float(2**bits - 1), 0, 1)
        if "WindowCenter" in ds and "WindowWidth" in ds:
            try:
                center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
            except (TypeError, ValueError, IndexError) as exc:
                raise PreprocessError(f"WindowCenter/WindowWidth: {exc}") from exc
            return window_linear(x, center, width, str(ds.get("VOILUTFunction", "LINEAR")))
    return window_minmax(x)


def invert_if_monochrome1(x: np.ndarray, photometric: str) -> np.ndarray:
    """MONOCHROME1 shows low values bright: flip [0, 1] values so that bright = high."""
    return (1.0 - x).astype(np.float32) if photometric == "MONOCHROME1" else x


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) in [0, 1] -> (H, W, channels): replicate grey or take luminance."""
    if x.ndim == 2:
        x = x[..., np.newaxis]
    if x.shape[-1] == channels:
        return x.astype(np.float32)
    if channels == 3 and x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1).astype(np.float32)
    if channels == 1 and x.shape[-1] == 3:
        lum = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
        return lum[..., np.newaxis].astype(np.float32)
    raise PreprocessError(f"cannot map {x.shape[-1]} samples to {channels} channels")


def letterbox_geometry(rows: int, cols: int, height: int, width: int, policy: str) -> Letterbox:
    """Where a rows x cols image lands in a height x width input (centred, aspect kept)."""
    if policy == "stretch":
        return Letterbox(0, 0, height, width)
    scale = min(height / rows, width / cols)
    new_h = max(1, min(height, round(rows * scale)))
    new_w = max(1, min(width, round(cols * scale)))
    return Letterbox((height - new_h) // 2, (width - new_w) // 2, new_h, new_w)


def resize(x: np.ndarray, height: int, width: int, policy: str) -> tuple[np.ndarray, Letterbox]:
    """Resize (H, W, C) float32 into (height, width, C) by letterbox (zero pad) or stretch."""
    box = letterbox_geometry(x.shape[0], x.shape[1], height, width, policy)
    out = np.zeros((height, width, x.shape[2]), dtype=np.float32)
    for c in range(x.shape[2]):
        plane = np.ascontiguousarray(x[..., c], dtype=np.float32)
        if plane.shape != (box.height, box.width):
            img = Image.fromarray(plane, mode="F").resize(
                (box.width, box.height), Image.Resampling.BILINEAR
            )
            plane = np.asarray(img, dtype=np.float32)
        out[box.top : box.top + box.height, box.left : box.left + box.width, c] = plane
    return out, box


def normalize(x: np.ndarray, spec: NormalizeSpec) -> np.ndarray:
    """``(x * scale + offset - mean) / std`` per channel on (H, W, C)."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return ((x * spec.scale + spec.offset - mean) / std).astype(np.float32)


def _colour_to_unit(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    bits = int(ds.get("BitsStored", 8))
    return (stored.astype(np.float32) / float(2**bits - 1)).clip(0, 1)


def preprocess_frame(
    stored: np.ndarray, ds: Dataset, spec: PreprocessSpec, inp: InputSpec
) -> Prepared:
    """Turn one decoded frame into the model's input tensor.

    Parameters
    ----------
    stored : numpy.ndarray
        The frame's stored values, (rows, cols) or (rows, cols, 3).
    ds : pydicom.dataset.Dataset
        The image's header (Modality LUT, VOI LUT, photometric interpretation).
    spec : ai.manifest.PreprocessSpec
        The manifest's windowing, resizing and normalisation.
    inp : ai.manifest.InputSpec
        The model's input tensor.

    Returns
    -------
    Prepared
        The tensor (C,H,W or H,W,C, no batch axis) and where the image lies in it.

    Raises
    ------
    PreprocessError
        A photometric interpretation, LUT or window the frame cannot be mapped with.
    """
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric in MONOCHROME:
        if stored.ndim != 2:
            raise PreprocessError(
                f"PhotometricInterpretation {photometric} with {stored.ndim}-D frame"
            )
        x = modality_lut(stored, ds)
        x = voi(x, ds, spec.window)
        x = invert_if_monochrome1(x, photometric)
    elif photometric == "PALETTE COLOR" and stored.ndim == 2:
        try:
            rgb = apply_color_lut(stored, ds)
        except Exception as exc:  # a missing or malformed palette, named
            raise PreprocessError(f"PALETTE COLOR lookup tables: {exc}") from exc
        x = (rgb.astype(np.float32) / float(np.iinfo(rgb.dtype).max)).clip(0, 1)
    elif stored.ndim == 3 and stored.shape[-1] == 3:
        x = _colour_to_unit(stored, ds)
    else:
        raise PreprocessError(f"PhotometricInterpretation {photometric!r} is not supported")
    x = to_channels(x, inp.channels)
    x, box = resize(x, inp.height, inp.width, spec.resize)
    x = normalize(x, spec.normalize)
    if inp.layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(2, 0, 1))
    return Prepared(tensor=x, box=box)


def crop_heatmap(cam: np.ndarray, box: Letterbox, height: int, width: int) -> np.ndarray:
    """Cut the source field of view out of a CAM.

    The CAM may come at any resolution for a height x width input; the result is
    float32 in [0, 1] at model resolution (box.height x box.width scale).
    """
    ch, cw = cam.shape
    if (ch, cw) != (height, width):
        cam = np.asarray(
            Image.fromarray(cam.astype(np.float32), mode="F").resize(
                (width, height), Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
    out = cam[box.top : box.top + box.height, box.left : box.left + box.width]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
