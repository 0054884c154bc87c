"""OrchestratorEmbeddings beyond the standard suites: kinds, one vector space, errors."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core import exceptions as lc
from scripted import ScriptedConfig, ScriptedProvider

import orchestrator
from orchestrator import Router
from orchestrator.capabilities import EmbeddingSpace
from orchestrator.types import EmbeddingKind, Embeddings
from orchestrator_langchain import OrchestratorEmbeddings


class OtherSpace(ScriptedProvider):
    def embedding_space(self) -> EmbeddingSpace:
        return EmbeddingSpace("other/emb", "emb-x", 8, 16)

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        result = await super().embed(texts, kind=kind)
        return Embeddings(result.vectors, self.config.name, "emb-x", 8, "other/emb")


class Failing(ScriptedProvider):
    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        raise orchestrator.RateLimitError("slow down", provider=self.config.name)


def test_documents_and_queries_are_embedded_as_such(
    router: Router, provider: ScriptedProvider
) -> None:
    embeddings = OrchestratorEmbeddings(router=router)
    documents = embeddings.embed_documents(["a", "b"])
    query = embeddings.embed_query("a")
    assert len(documents) == 2 and len(query) == 8
    assert all(isinstance(x, float) for x in query)
    assert query != documents[0]  # the scripted model embeds each kind differently
    assert embeddings.embed_documents([]) == []


async def test_async_embeddings(router: Router) -> None:
    embeddings = OrchestratorEmbeddings(router=router)
    assert len(await embeddings.aembed_documents(["a", "b", "c"])) == 3
    assert len(await embeddings.aembed_query("q")) == 8
    assert await embeddings.aembed_documents([]) == []


def test_the_first_answers_space_is_kept(provider: ScriptedProvider) -> None:
    router = Router()
    router.add_provider(provider)
    router.add_provider(OtherSpace(ScriptedConfig(name="other")))
    embeddings = OrchestratorEmbeddings(router=router)
    assert embeddings.space is None
    embeddings.embed_documents(["a"])
    assert embeddings.space == "scripted/emb"
    router.remove_provider("scripted")  # its space is gone: no answer from another space
    with pytest.raises(orchestrator.ConfigurationError, match="scripted/emb"):
        embeddings.embed_query("q")


def test_a_named_space_is_used(provider: ScriptedProvider) -> None:
    router = Router()
    router.add_provider(provider)
    router.add_provider(OtherSpace(ScriptedConfig(name="other")))
    embeddings = OrchestratorEmbeddings(router=router, space="other/emb", timeout=5)
    embeddings.embed_query("q")
    assert embeddings.space == "other/emb"


async def test_router_errors_are_also_langchains() -> None:
    router = Router()
    router.add_provider(Failing(ScriptedConfig(name="f", max_retries=0)))
    with pytest.raises(lc.ModelRateLimitError):
        OrchestratorEmbeddings(router=router).embed_query("q")
    router = Router()
    router.add_provider(Failing(ScriptedConfig(name="f", max_retries=0)))
    with pytest.raises(lc.ModelRateLimitError):
        await OrchestratorEmbeddings(router=router).aembed_query("q")


def test_built_from_a_config() -> None:
    embeddings = OrchestratorEmbeddings(config={"providers": {"m": {"type": "mock"}}})
    with pytest.raises(lc.ModelInvalidRequestError):  # the mock has no embeddings
        embeddings.embed_query("q")
