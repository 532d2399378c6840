"""Every settings model is frozen: a loaded configuration cannot be changed in place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from pydantic import BaseModel

import dicom_node.settings


def _settings_models() -> list[type[BaseModel]]:
    models = []
    for info in pkgutil.iter_modules(dicom_node.settings.__path__):
        module = importlib.import_module(f"dicom_node.settings.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseModel) and cls.__module__ == module.__name__:
                models.append(cls)
    return models


def test_every_settings_model_is_frozen() -> None:
    models = _settings_models()
    assert len(models) > 10  # the walk found them
    thawed = sorted(m.__qualname__ for m in models if not m.model_config.get("frozen"))
    assert thawed == []
