"""LangChain's own integration suites (langchain-tests), unchanged, driving
ChatOrchestrator -> Router -> a provider: the in-process scripted provider here (the vendor
emulators in test_standard_emulators.py). What "the model" answers to each standard test's
prompt is scripted (see scripted.py); everything else is the real path."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests
from scripted import Backend

from orchestrator_langchain import ChatOrchestrator, OrchestratorEmbeddings


class OverBackend:
    """The test's backend (the ``backend`` fixture), scripted with the model's answers to
    the test's prompts. Test classes say which backend in ``backend_name``."""

    backend_name = "scripted"
    backend: Backend

    @pytest.fixture(autouse=True)
    def _backend(self, backend: Backend, request: pytest.FixtureRequest) -> None:
        type(self).backend = backend
        callspec = getattr(request.node, "callspec", None)
        kwargs: dict[str, Any] = getattr(self, "structured_output_kwargs", {})
        backend.script(
            request.node.originalname,
            method=kwargs.get("method", "json_schema"),
            schema_type=callspec.params.get("schema_type") if callspec else None,
        )


class ChatSuite(OverBackend, ChatModelIntegrationTests):
    """The chat model suite, with capability flags that tell the truth: tools, tool_choice
    and structured output are derived by the suite from our bind_tools and
    with_structured_output; JSON mode and per-call models are supported; multimodal input
    is not (the router sends text)."""

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


class EmbeddingsSuite(OverBackend, EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[OrchestratorEmbeddings]:
        return OrchestratorEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"router": self.backend.router}


class TestScriptedChat(ChatSuite):
    backend_name = "scripted"


class TestScriptedChatFunctionCalling(ChatSuite):
    """Structured output as a forced tool call instead of response_format."""

    backend_name = "scripted"

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "function_calling"}


class TestScriptedEmbeddings(EmbeddingsSuite):
    backend_name = "scripted"
