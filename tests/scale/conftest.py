"""One PostgreSQL server and one redis-server for the distributed tests (a fresh
database per test; the broker restarted per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres, redis


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.PostgresServer]:
    why = postgres.available()
    if why:
        pytest.skip(why)
    with postgres.PostgresServer() as server:
        yield server


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[redis.RedisServer]:
    why = redis.available()
    if why:
        pytest.skip(why)
    with redis.RedisServer(tmp_path / "redis") as server:
        yield server
