"""Alembic migrations of the node's database (see ``dicom_node/schema.py``)."""
