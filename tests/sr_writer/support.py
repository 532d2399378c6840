"""Shared inputs for the result-writer tests: synthetic sources and typed results.

The results are built directly from ``sr_writer.inputs`` with fixed probabilities and
small Gaussian-blob heatmaps: they are the writer's inputs, not faked outputs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicom_node.synthetic import iter_ct_series, make_cr, make_dx
from sr_writer import (
    ImageResult,
    LabelResult,
    ModelIdentity,
    ResultObjects,
    WriteOptions,
    write_results,
)
from sr_writer.codes import FINDINGS
from tests.support.dcmtk import find_dcmtk_tool

WHEN = dt.datetime(2026, 1, 3, 12, 0, 0)

MODEL = ModelIdentity(
    name="chest-demo",
    version="1.0.0",
    manufacturer="dicom-node demo",
    device_uid="2.25.123456789012345678901234567890",
    intended_use="Demonstration of chest radiograph findings",
    demo=True,
)

# dsrdump's note on UTF-8 (ISO_IR 192) SRs, which the demo model's labels need.
UTF8_NOTE = "W: The VR checker does not support this Specific Character Set: ISO_IR 192\n"

needs_dciodvfy = pytest.mark.skipif(
    shutil.which("dciodvfy") is None, reason="dicom3tools dciodvfy not installed"
)
needs_dcmtk = pytest.mark.skipif(
    find_dcmtk_tool("dsrdump") is None, reason="DCMTK dsrdump not installed"
)


def blob(n: int = 7, cy: float = 0.3, cx: float = 0.3, sigma: float = 0.15) -> np.ndarray:
    """A Gaussian blob heatmap (float32 in [0, 1]) at relative position (cy, cx)."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / (n - 1)
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def labels(
    pneumothorax: float = 0.83, effusion: float = 0.12, cardiomegaly: float = 0.47
) -> tuple[LabelResult, ...]:
    """Three chest labels at threshold 0.5; heatmaps for the first two."""
    return (
        LabelResult(
            "pneumothorax",
            FINDINGS["pneumothorax"],
            pneumothorax,
            0.5,
            pneumothorax >= 0.5,
            blob(cy=0.3, cx=0.25),
        ),
        LabelResult(
            "pleural_effusion",
            FINDINGS["pleural_effusion"],
            effusion,
            0.5,
            effusion >= 0.5,
            blob(cy=0.8, cx=0.75),
        ),
        LabelResult(
            "cardiomegaly", FINDINGS["cardiomegaly"], cardiomegaly, 0.5, cardiomegaly >= 0.5, None
        ),
    )


def ct_with_distinct_heatmaps() -> tuple[list[Dataset], list[ImageResult]]:
    """A 3-slice CT whose pneumothorax heatmap peaks at another height on each slice."""
    sources = SOURCES["ct"]()
    results = [
        ImageResult(
            str(ds.SOPInstanceUID),
            None,
            MODEL,
            tuple(
                dataclasses.replace(label, heatmap=blob(cy=0.2 + 0.3 * i, cx=0.5))
                if label.name == "pneumothorax"
                else label
                for label in labels()
            ),
        )
        for i, ds in enumerate(sources)
    ]
    return sources, results


def result_for(ds: Dataset, model: ModelIdentity = MODEL, **probs: float) -> ImageResult:
    return ImageResult(str(ds.SOPInstanceUID), None, model, labels(**probs))


SOURCES: dict[str, Callable[[], list[Dataset]]] = {
    "cr": lambda: [make_cr(rows=384, cols=320)],
    "dx-mono1": lambda: [make_dx(rows=320, cols=384, photometric="MONOCHROME1")],
    "dx-mono2": lambda: [make_dx(rows=320, cols=384, photometric="MONOCHROME2")],
    "ct": lambda: list(iter_ct_series(3, rows=256, cols=256)),
}


def write(
    sources: Sequence[Dataset],
    options: WriteOptions | None = None,
    results: Sequence[ImageResult] | None = None,
) -> ResultObjects:
    options = options or WriteOptions(created_at=WHEN)
    if results is None:
        results = [
            result_for(ds, pneumothorax=0.83 - 0.1 * (i % 8)) for i, ds in enumerate(sources)
        ]
    return write_results(sources, results, options)


def save(ds: Dataset, folder: Path, name: str) -> Path:
    path = folder / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
