"""Shared fixtures: the bundled demo package built once per session into a temp cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai import ModelRegistry, RuntimeOptions
from ai.bundled import ensure_demo_package


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("models")
    ensure_demo_package(cache)
    return cache


@pytest.fixture(scope="session")
def demo_registry(demo_cache: Path):
    registry = ModelRegistry.load(
        cache_dir=demo_cache,
        include_bundled=True,
        options=RuntimeOptions(intra_op_threads=1, max_wait_ms=20),
    )
    yield registry
    registry.close()
