"""A redis-server per test (the session's PostgreSQL server: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import redis


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[redis.RedisServer]:
    why = redis.available()
    if why:
        pytest.skip(why)
    with redis.RedisServer(tmp_path / "redis") as server:
        yield server
