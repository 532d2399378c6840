"""AI runtime: model packages, DICOM-aware preprocessing, ONNX Runtime, dynamic batching.

Knows nothing of networks, databases or files beyond model packages. Never imports
``dicom_node`` or ``sr_writer``. The facade: :class:`ModelRegistry`, :class:`RuntimeOptions`.
"""

from ai.registry import ModelRegistry, PackageError
from ai.session import RuntimeOptions

__all__ = ["ModelRegistry", "PackageError", "RuntimeOptions"]
