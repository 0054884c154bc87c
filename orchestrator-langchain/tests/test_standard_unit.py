"""LangChain's own unit suites (langchain-tests), unchanged, over a scripted router."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests
from scripted import Backend

from orchestrator_langchain import ChatOrchestrator, OrchestratorEmbeddings


class TestChatOrchestratorUnit(ChatModelUnitTests):
    backend: Backend

    @pytest.fixture(autouse=True)
    def _backend(self, backend: Backend) -> None:
        type(self).backend = backend

    @property
    def chat_model_class(self) -> type[ChatOrchestrator]:
        return ChatOrchestrator

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": self.backend.router}

    # Capability flags that tell the truth (the defaults derive tools, tool_choice and
    # structured output from our overrides of bind_tools and with_structured_output).
    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "scripted-2"

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # No router given: Router.from_env() finds GigaChat's credentials (no call is made).
        return {"GIGACHAT_CREDENTIALS": "ZW52OmVudg=="}, {"temperature": 0.5}, {"temperature": 0.5}


class TestOrchestratorEmbeddingsUnit(EmbeddingsUnitTests):
    backend: Backend

    @pytest.fixture(autouse=True)
    def _backend(self, backend: Backend) -> None:
        type(self).backend = backend

    @property
    def embeddings_class(self) -> type[OrchestratorEmbeddings]:
        return OrchestratorEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"router": self.backend.router}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return {"GIGACHAT_CREDENTIALS": "ZW52OmVudg=="}, {"timeout": 5.0}, {"timeout": 5.0}
