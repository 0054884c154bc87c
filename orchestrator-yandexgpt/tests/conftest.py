"""Fixtures: one emulator served on loopback per test module (HTTP and HTTPS), reset
before every test, and providers pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import YandexGPTEmulator, config_for

# Fast retries: the tests assert on behaviour, never on timings.
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(YandexGPTEmulator()) as served:
        yield served


@pytest.fixture(scope="module")
def tls_server() -> Iterator[LoopbackServer]:
    with LoopbackServer(YandexGPTEmulator(), tls=True) as served:
        yield served


@pytest.fixture
def emulator(server: LoopbackServer) -> YandexGPTEmulator:
    app: YandexGPTEmulator = server.app
    app.reset()
    return app


@pytest.fixture
def make_provider(server: LoopbackServer, emulator: YandexGPTEmulator) -> Any:
    def make(**overrides: Any) -> YandexGPTProvider:
        values = {**FAST, **overrides}
        return YandexGPTProvider(config_for(server, **values), environ={})

    return make


@pytest.fixture
async def provider(make_provider: Any) -> AsyncIterator[YandexGPTProvider]:
    async with make_provider() as made:
        yield made
