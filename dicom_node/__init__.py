"""dicom-node: the application (network, storage, jobs, routing, CLI, HTTP)."""

__version__ = "0.1.0"
