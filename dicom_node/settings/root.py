"""The root of the configuration file and its loader."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from dicom_node.settings.destinations import Destination
from dicom_node.settings.models import ModelsSettings
from dicom_node.settings.routes import RouteRule


class NodeConfig(BaseModel):
    """Everything a node needs; every field has an embedded default."""

    model_config = ConfigDict(extra="forbid")

    models: ModelsSettings = Field(default_factory=ModelsSettings)
    routes: list[RouteRule] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)


def load_config(path: Path | None) -> NodeConfig:
    """Load and validate ``path``; ``None`` gives the embedded defaults."""
    if path is None:
        return NodeConfig()
    data = yaml.safe_load(Path(path).read_text()) or {}
    return NodeConfig.model_validate(data)
