"""One redis-server for the whole test session, on a free loopback port; each test gets
its own key prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from orchestrator_redis.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may kill and restart."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
