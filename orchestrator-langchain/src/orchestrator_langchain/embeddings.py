"""``OrchestratorEmbeddings``: LangChain embeddings over :meth:`Router.embed
<orchestrator.Router.embed>`, every vector from one vector space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from orchestrator import ProviderError, Router, SyncRouter
from orchestrator.types import EmbeddingKind
from orchestrator.types import Embeddings as Vectors
from orchestrator_langchain._convert import as_langchain_error
from orchestrator_langchain._runtime import resolve_router, sync_router

__all__ = ["OrchestratorEmbeddings"]


class OrchestratorEmbeddings(BaseModel, Embeddings):
    """LangChain ``Embeddings`` over an orchestrator ``Router``.

    ``embed_documents`` embeds texts as documents (``kind="document"``), ``embed_query``
    as a query (``kind="query"``; YandexGPT has a model for each, GigaChat one for both).

    **One vector space.** Vectors are comparable only within one space (one embedding
    model). ``space`` names it (see ``Router.embedding_spaces``); left unset, the space of
    the first answer is kept for the life of this object, so the documents you index and
    the queries you search with always come from the same space: the router fails over
    only between providers of that space (several accounts of one vendor), and raises
    rather than answer from another.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: Any = Field(default=None, exclude=True)
    """The orchestrator ``Router`` (or ``SyncRouter``) that answers."""
    config: str | Path | dict[str, Any] | None = Field(default=None, exclude=True)
    """A configuration file (or dict) to build the router from, instead of ``router``."""
    space: str | None = None
    """The vector space to answer from; None: the router's default, then kept."""
    provider: str | None = None
    """Pin every request to this provider of the router."""
    timeout: float | None = None
    """Seconds for a whole request, across retries and fallbacks (the router's deadline)."""

    _router: Router = PrivateAttr()
    _given_sync: SyncRouter | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build_router(self) -> OrchestratorEmbeddings:
        self._router, self._given_sync = resolve_router(self.router, self.config)
        self.router = self._router
        return self

    def _options(self, kind: EmbeddingKind) -> dict[str, Any]:
        return {
            "kind": kind,
            "space": self.space,
            "provider": self.provider,
            "deadline": self.timeout,
        }

    def _vectors(self, result: Vectors) -> list[list[float]]:
        if self.space is None:
            self.space = result.space  # from now on, every vector from this space
        return [[float(x) for x in vector] for vector in result.vectors]

    def _embed(self, texts: Sequence[str], kind: EmbeddingKind) -> list[list[float]]:
        runner = sync_router(self._router, self._given_sync)
        try:
            return self._vectors(runner.embed(list(texts), **self._options(kind)))
        except ProviderError as exc:
            as_langchain_error(exc)
            raise

    async def _aembed(self, texts: Sequence[str], kind: EmbeddingKind) -> list[list[float]]:
        try:
            return self._vectors(await self._router.embed(list(texts), **self._options(kind)))
        except ProviderError as exc:
            as_langchain_error(exc)
            raise

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (an empty list for no texts)."""
        return self._embed(texts, "document") if texts else []

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
        return self._embed([text], "query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (an empty list for no texts)."""
        return await self._aembed(texts, "document") if texts else []

    async def aembed_query(self, text: str) -> list[float]:
        """The vector of a search query."""
        return (await self._aembed([text], "query"))[0]
