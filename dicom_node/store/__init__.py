"""The instance store: durable Part 10 files under ``{study}/{series}/{sop}.dcm``."""

from dicom_node.store.errors import StoreError
from dicom_node.store.writer import InstanceStore, safe_component

__all__ = ["InstanceStore", "StoreError", "safe_component"]
