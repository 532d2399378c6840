"""Node configuration: one YAML file validated by pydantic.

Sections live in their own modules: ``node`` (network, storage, AE titles), ``models``,
``routes``, ``destinations``. ``load_config`` is the only way a file becomes settings.
"""

from dicom_node.settings.root import ConfigError, NodeConfig, load_config

__all__ = ["ConfigError", "NodeConfig", "load_config"]
