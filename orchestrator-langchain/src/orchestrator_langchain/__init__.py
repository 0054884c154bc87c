"""LangChain integration of the Multi-LLM Orchestrator.

    from orchestrator import Router
    from orchestrator_langchain import ChatOrchestrator, OrchestratorEmbeddings

    llm = ChatOrchestrator(router=Router.from_config("orchestrator.toml"))
    print(llm.invoke("Hello").content)

:class:`ChatOrchestrator` is a LangChain ``BaseChatModel`` (invoke, stream, batch, tools,
structured output) and :class:`OrchestratorEmbeddings` a LangChain ``Embeddings``, both
answered by a :class:`~orchestrator.Router`: its retries, failover, breakers and budgets
apply. Both pass LangChain's standard test suites (``langchain-tests``).
"""

from __future__ import annotations

from orchestrator_langchain.chat_models import ChatOrchestrator
from orchestrator_langchain.embeddings import OrchestratorEmbeddings

__all__ = ["ChatOrchestrator", "OrchestratorEmbeddings"]
