"""Result writers: TID 1500 Structured Report and Secondary Capture heatmaps.

Takes source pydicom Datasets and the typed results in ``sr_writer.inputs``; returns
pydicom Datasets. Never imports ``ai`` or ``dicom_node``.
"""
