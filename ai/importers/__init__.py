"""Importers that turn third-party models into dicom-node model packages."""
