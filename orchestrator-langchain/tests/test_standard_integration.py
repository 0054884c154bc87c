"""LangChain's own integration suites (langchain-tests), unchanged, driving
ChatOrchestrator -> Router -> each backend (see scripted.py for what "the model" says)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests
from scripted import Backend

from orchestrator_langchain import ChatOrchestrator, OrchestratorEmbeddings


class _OverBackend:
    """The backend of the test (a fixture), and the model's answers to its prompts."""

    backend: Backend

    @pytest.fixture(autouse=True)
    def _backend(self, backend: Backend, request: pytest.FixtureRequest) -> None:
        type(self).backend = backend
        backend.script(request.node.originalname)


class TestChatOrchestratorIntegration(_OverBackend, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatOrchestrator]:
        return ChatOrchestrator

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": self.backend.router}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str | None:
        return self.backend.model_override


class TestOrchestratorEmbeddingsIntegration(_OverBackend, EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[OrchestratorEmbeddings]:
        return OrchestratorEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"router": self.backend.router}
