"""The session's PostgreSQL server (tests/node/conftest.py) and a redis-server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.conftest import index_url, postgres  # noqa: F401 - fixtures
from tests.support import redis


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[redis.RedisServer]:
    why = redis.available()
    if why:
        pytest.skip(why)
    with redis.RedisServer(tmp_path / "redis") as server:
        yield server
