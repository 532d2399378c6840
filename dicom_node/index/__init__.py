"""The index of stored instances and their study/series groups (SQLAlchemy, on ``db.Base``)."""

from dicom_node.db import utcnow
from dicom_node.index import queries
from dicom_node.index.header import HeaderError, InstanceHeader, parse_header
from dicom_node.index.recorder import DuplicateInstance, Receipt, Recorded, Recorder
from dicom_node.index.tables import COMPLETE, OPEN, Group, Instance

__all__ = [
    "COMPLETE",
    "OPEN",
    "DuplicateInstance",
    "Group",
    "HeaderError",
    "Instance",
    "InstanceHeader",
    "Receipt",
    "Recorded",
    "Recorder",
    "parse_header",
    "queries",
    "utcnow",
]
