"""Fixtures for the store/index hostile-input tests (shared with tests/node)."""

from __future__ import annotations

from tests.node.conftest import index_url, postgres, pytest_collection_modifyitems

__all__ = ["index_url", "postgres", "pytest_collection_modifyitems"]
