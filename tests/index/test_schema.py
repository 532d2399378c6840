"""An index written by an older version: the node refuses to start on it, naming
`dicom-node db upgrade`, which brings it to the current schema (the QIDO-RS columns and
indexes included). The upgrade with data, on SQLite and PostgreSQL, and the comparison
with the whole declared schema: tests/scale/test_migrations.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy import inspect as sa_inspect

from dicom_node import schema
from dicom_node.db import Database, sqlite_url
from dicom_node.node import Node
from dicom_node.settings.root import NodeConfig
from tests.scale.fixtures import schema_8da2ed1 as previous_release


def test_an_index_from_an_older_version_gains_the_new_columns_by_db_upgrade(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "index.sqlite")
    engine = create_engine(url)
    previous_release.Base.metadata.create_all(engine)  # before the QIDO-RS columns
    engine.dispose()
    cfg = NodeConfig(data_dir=tmp_path / "data", database_url=url, models={"bundled": False})
    with pytest.raises(schema.SchemaError, match="dicom-node db upgrade"):
        Node(cfg)
    db = Database(url)
    schema.upgrade(db)
    inspector = sa_inspect(db.engine)
    columns = {c["name"] for c in inspector.get_columns("instances")}
    assert {"modality", "study_description", "referring_physician"} <= columns
    assert "ix_instances_modality" in {i["name"] for i in inspector.get_indexes("instances")}
    schema.ensure_current(db)
    db.dispose()
