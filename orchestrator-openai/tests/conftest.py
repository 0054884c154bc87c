"""Fixtures: one emulator per module, served over a real loopback socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_openai import OpenAIProvider
from orchestrator_openai.emulator import OpenAIEmulator, config_for


@pytest.fixture(scope="module")
def emulator() -> OpenAIEmulator:
    return OpenAIEmulator()


@pytest.fixture(scope="module")
def server(emulator: OpenAIEmulator) -> Iterator[LoopbackServer]:
    with LoopbackServer(emulator) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_emulator(request: pytest.FixtureRequest) -> None:
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()


@pytest.fixture
def make_provider(server: LoopbackServer) -> Iterator[Callable[..., OpenAIProvider]]:
    # Providers stay referenced until the test ends: one collected while its trio run goes
    # on makes trio warn about the core's per-loop finalizer generator.
    made: list[OpenAIProvider] = []

    def make(**overrides: Any) -> OpenAIProvider:
        overrides.setdefault("max_retries", 0)
        made.append(OpenAIProvider(config_for(server, **overrides)))
        return made[-1]

    yield make
    made.clear()


@pytest.fixture
def provider(make_provider: Callable[..., OpenAIProvider]) -> OpenAIProvider:
    return make_provider()
