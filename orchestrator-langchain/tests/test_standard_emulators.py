"""LangChain's own integration suites, unchanged, driving ChatOrchestrator -> Router ->
a vendor provider -> HTTP on loopback -> that vendor's emulator (its wire format, auth,
SSE). What "the model" answers to each standard test's prompt is scripted through the
emulators (see scripted.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulators import openai_backend
from scripted import Backend
from test_standard_integration import ChatSuite, EmbeddingsSuite

from conftest import release
from orchestrator.testing import LoopbackServer


@pytest.fixture(scope="module")
def openai_server() -> Iterator[LoopbackServer]:
    from orchestrator_openai.emulator import OpenAIEmulator

    with LoopbackServer(OpenAIEmulator()) as server:
        yield server


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A router over the emulator the test class names, reset for each test."""
    name = request.cls.backend_name
    make = {"openai": openai_backend}[name]
    made = make(request.getfixturevalue(f"{name}_server"))
    yield made
    release(made.router)


class TestOpenAIChat(ChatSuite):
    backend_name = "openai"


class TestOpenAIEmbeddings(EmbeddingsSuite):
    backend_name = "openai"
