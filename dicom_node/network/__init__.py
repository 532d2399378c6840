"""DICOM networking: the Storage SCP, its spool files and its guarded pynetdicom hooks.

The SCU that sends results lives in :mod:`dicom_node.delivery`.
"""
