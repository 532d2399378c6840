"""Result writers: TID 1500 Structured Report and Secondary Capture heatmaps.

Takes source pydicom Datasets and the typed results in ``sr_writer.inputs``; returns
pydicom Datasets. Never imports ``ai`` or ``dicom_node``. Entry point:
:func:`write_results`.

The writer (and with it highdicom) is imported on first use of
``write_results``/``ResultObjects``, so importing the inputs and options stays light
(tests/test_memory.py checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sr_writer.errors import ResultWriteError
from sr_writer.inputs import Code, ImageResult, LabelResult, ModelIdentity
from sr_writer.options import WriteOptions

if TYPE_CHECKING:
    from sr_writer.writer import ResultObjects, write_results

__all__ = [
    "Code",
    "ImageResult",
    "LabelResult",
    "ModelIdentity",
    "ResultObjects",
    "ResultWriteError",
    "WriteOptions",
    "write_results",
]


def __getattr__(name: str) -> object:  # PEP 562: the writer loads on first access
    if name in ("ResultObjects", "write_results"):
        from sr_writer import writer

        return getattr(writer, name)
    raise AttributeError(f"module 'sr_writer' has no attribute {name!r}")
