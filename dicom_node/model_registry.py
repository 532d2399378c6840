"""The node's model registry, built from the ``models:`` section of its configuration."""

from __future__ import annotations

from pathlib import Path

from ai.registry import ModelRegistry
from dicom_node.settings.root import NodeConfig


def load_registry(config: NodeConfig, *, only: Path | None = None) -> ModelRegistry:
    """Every package the configuration names plus the bundled demo (cached under
    ``<data_dir>/models``); with ``only``, just the package in that directory."""
    settings = config.models
    if only is not None:
        return ModelRegistry.load([only], include_bundled=False,
                                  options=settings.runtime_options())
    models_dir = settings.resolved_models_dir(Path(config.data_dir))
    return ModelRegistry.load(
        package_dirs=settings.packages,
        cache_dir=models_dir,
        include_bundled=settings.bundled,
        options=settings.runtime_options(),
        models_dir=models_dir,
    )
