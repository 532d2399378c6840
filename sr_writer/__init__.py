"""Result writers: TID 1500 Structured Report and Secondary Capture heatmaps.

Takes source pydicom Datasets and the typed results in ``sr_writer.inputs``; returns
pydicom Datasets. Never imports ``ai`` or ``dicom_node``. Entry point:
:func:`write_results`.
"""

from sr_writer.errors import ResultWriteError
from sr_writer.inputs import Code, ImageResult, LabelResult, ModelIdentity
from sr_writer.options import WriteOptions
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
