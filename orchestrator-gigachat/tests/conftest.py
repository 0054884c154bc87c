"""Fixtures: one emulator per module, served over real loopback sockets (HTTP and HTTPS)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import GigaChatEmulator, config_for


@pytest.fixture(scope="module")
def emulator() -> GigaChatEmulator:
    return GigaChatEmulator()


@pytest.fixture(scope="module")
def server(emulator: GigaChatEmulator) -> Iterator[LoopbackServer]:
    with LoopbackServer(emulator) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_emulator(request: pytest.FixtureRequest) -> None:
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()


@pytest.fixture
def make_provider(server: LoopbackServer) -> Iterator[Callable[..., GigaChatProvider]]:
    # Providers stay referenced until the test ends: one collected while its trio run goes
    # on makes trio warn about the core's per-loop finalizer generator.
    made: list[GigaChatProvider] = []

    def make(**overrides: Any) -> GigaChatProvider:
        overrides.setdefault("max_retries", 0)
        made.append(GigaChatProvider(config_for(server, **overrides)))
        return made[-1]

    yield make
    made.clear()


@pytest.fixture
def provider(make_provider: Callable[..., GigaChatProvider]) -> GigaChatProvider:
    return make_provider()


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    until = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def wait_until() -> Callable[..., bool]:
    """Poll a condition (the server thread notices closed sockets asynchronously)."""
    return _wait_until
