"""Router.embed: one request is answered from one vector space, in order, batch by batch."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import (
    AllProvidersFailedError,
    Embeddings,
    GenerationParams,
    Router,
    SyncRouter,
    UnsupportedCapabilityError,
    Usage,
)
from orchestrator.capabilities import EmbeddingSpace
from orchestrator.config import ProviderConfig
from orchestrator.errors import ConfigurationError, ServiceUnavailableError
from orchestrator.plugins import PluginRegistry
from orchestrator.pricing import Price
from orchestrator.providers.base import BaseProvider
from orchestrator.types import EmbeddingKind

pytestmark = pytest.mark.anyio

MODELS = {"m-a": 1.0, "m-b": 2.0}


def code(text: str) -> float:
    return float(zlib.crc32(text.encode()) % 100_000)


class Embedder(BaseProvider):
    """Vectors ``[model code, text code, kind, 0...]``; fails by script (True = fail)."""

    def __init__(
        self,
        name: str,
        space: str,
        model: str,
        *,
        dimension: int = 4,
        max_batch: int = 2,
        failures: Sequence[bool] = (),
        wrong_dimension: bool = False,
    ) -> None:
        super().__init__(ProviderConfig(name=name, model=model))
        self.space = EmbeddingSpace(space, model, dimension, max_batch)
        self.failures = list(failures)
        self.batches: list[list[str]] = []
        self.wrong_dimension = wrong_dimension

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        return "text"

    async def health_check(self) -> bool:
        return True

    def embedding_space(self) -> EmbeddingSpace:
        return self.space

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        assert len(texts) <= self.space.max_batch
        self.batches.append(list(texts))
        await anyio.sleep(0)
        if self.failures and self.failures.pop(0):
            raise ServiceUnavailableError("down", status_code=503, transient=False)
        size = self.space.dimension - (1 if self.wrong_dimension else 0)
        marker = 1.0 if kind == "query" else 0.0
        vectors = [[MODELS[self.space.model], code(t), marker] + [0.0] * (size - 3) for t in texts]
        tokens = sum(len(t.split()) for t in texts)
        return Embeddings(
            vectors, self.name, self.space.model, size, self.space.name, Usage(tokens, 0, tokens)
        )


def router(*providers: Embedder | BaseProvider, **options: Any) -> Router:
    r = Router("first-available", registry=PluginRegistry(), **options)
    for provider in providers:
        r.add_provider(provider, prices={"*": Price("1", "0")})
    return r


TEXTS = ["one text", "two texts here", "three", "four words in it", "five"]


async def test_order_and_batches() -> None:
    a = Embedder("a", "A", "m-a", max_batch=2)
    result = await router(a).embed(TEXTS)
    assert [v[1] for v in result.vectors] == [code(t) for t in TEXTS]
    # Batches of max_batch, sent concurrently (in any order), answered in the texts' order.
    assert sorted(a.batches) == sorted([TEXTS[0:2], TEXTS[2:4], TEXTS[4:5]])
    assert (result.provider, result.model, result.space, result.dimension) == ("a", "m-a", "A", 4)
    assert len(result) == 5
    assert result.usage == Usage(11, 0, 11)
    assert result.cost == Decimal(11) / 1000
    single = await router(Embedder("a", "A", "m-a")).embed("just one", kind="query")
    assert single.vectors[0][1:3] == [code("just one"), 1.0]


async def test_failover_stays_in_the_space_of_the_first_provider() -> None:
    a1 = Embedder("a1", "A", "m-a", failures=[True] * 10)
    b = Embedder("b", "B", "m-b")
    a2 = Embedder("a2", "A", "m-a", max_batch=3)
    r = router(a1, b, a2)
    assert r.embedding_spaces == {"A": ["a1", "a2"], "B": ["b"]}
    result = await r.embed(TEXTS)
    assert result.space == "A" and result.model == "m-a"
    assert {v[0] for v in result.vectors} == {MODELS["m-a"]}
    assert b.batches == []  # another space is never asked unless named
    assert max(len(batch) for batch in a2.batches) == 2  # the space's smallest max_batch


async def test_a_failed_space_fails_the_request_unless_another_is_named() -> None:
    a = Embedder("a", "A", "m-a", failures=[False, True] * 10)
    b = Embedder("b", "B", "m-b")
    with pytest.raises(AllProvidersFailedError):
        await router(a, b).embed(TEXTS)
    a = Embedder("a", "A", "m-a", failures=[False, True] * 10)
    result = await router(a, b).embed(TEXTS, space=["A", "B"])
    # Space A answered some batches, then failed: the whole request starts again in B.
    assert result.space == "B" and {v[0] for v in result.vectors} == {MODELS["m-b"]}
    assert [v[1] for v in result.vectors] == [code(t) for t in TEXTS]
    assert (await router(a, b).embed(TEXTS, space="B")).provider == "b"


async def test_a_wrong_dimension_is_a_provider_bug_and_fails_over() -> None:
    broken = Embedder("broken", "A", "m-a", wrong_dimension=True)
    good = Embedder("good", "A", "m-a")
    result = await router(broken, good).embed(TEXTS)
    assert result.provider == "good"
    with pytest.raises(AllProvidersFailedError, match="not a vector of 4 numbers"):
        await router(Embedder("broken", "A", "m-a", wrong_dimension=True)).embed(TEXTS)


class Chatty(BaseProvider):
    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        return "text"

    async def health_check(self) -> bool:
        return True


async def test_bad_input_and_missing_capability_fail_before_any_call() -> None:
    a = Embedder("a", "A", "m-a")
    r = router(a, Chatty(ProviderConfig(name="chatty")))
    for texts, error, message in [
        ([], ValueError, "at least one text"),
        (["ok", "  "], ValueError, r"texts\[1\] is empty"),
        (["ok", 3], TypeError, r"texts\[1\] must be str"),
        (42, TypeError, "string or a list"),
    ]:
        with pytest.raises(error, match=message):
            await r.embed(texts)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind must be"):
        await r.embed(["x"], kind="passage")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="concurrency"):
        await r.embed(["x"], concurrency=0)
    with pytest.raises(ConfigurationError, match="No provider answers in embedding space 'Z'"):
        await r.embed(["x"], space="Z")
    with pytest.raises(UnsupportedCapabilityError, match="needs embeddings") as info:
        await r.embed(["x"], provider="chatty")
    assert info.value.capability == "embeddings"
    with pytest.raises(ConfigurationError, match="No provider named 'nope'"):
        await r.embed(["x"], provider="nope")
    assert a.batches == []


async def test_an_instance_without_a_space_has_no_embeddings() -> None:
    class NoSpace(Embedder):
        def embedding_space(self) -> Any:
            return None

    r = router(NoSpace("x", "A", "m-a"), Embedder("y", "B", "m-b"))
    assert r.embedding_spaces == {"B": ["y"]}
    assert not r.slots[0].capabilities.embeddings
    assert (await r.embed(["text"])).provider == "y"


def test_sync_router_embeds() -> None:
    with SyncRouter(router(Embedder("a", "A", "m-a"))) as sync:
        assert len(sync.embed(TEXTS, kind="query").vectors) == 5


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.text(min_size=1, max_size=12).filter(str.strip), min_size=1, max_size=12),
    failures=st.lists(st.lists(st.booleans(), max_size=8), min_size=3, max_size=3),
    batch_sizes=st.lists(st.integers(min_value=1, max_value=4), min_size=3, max_size=3),
    spaces=st.sampled_from([None, "A", "B", ["A", "B"], ["B", "A"]]),
    concurrency=st.integers(min_value=1, max_value=4),
)
def test_an_answer_never_mixes_models_and_keeps_order(
    backend: str,
    texts: list[str],
    failures: list[list[bool]],
    batch_sizes: list[int],
    spaces: str | list[str] | None,
    concurrency: int,
) -> None:
    """Whatever fails where, an answer is wholly from one model, one vector per text in
    order; and a request only fails when every provider of every allowed space failed."""
    providers = [
        Embedder("a1", "A", "m-a", max_batch=batch_sizes[0], failures=failures[0]),
        Embedder("b", "B", "m-b", max_batch=batch_sizes[1], failures=failures[1]),
        Embedder("a2", "A", "m-a", max_batch=batch_sizes[2], failures=failures[2]),
    ]

    async def main() -> None:
        r = router(*providers)
        try:
            result = await r.embed(texts, space=spaces, concurrency=concurrency)
        except AllProvidersFailedError as exc:
            assert any(p.failures is not None for p in providers)
            assert all(not a.skipped or a.provider for a in exc.attempts)
            return
        assert len(result.vectors) == len(texts)
        assert len({v[0] for v in result.vectors}) == 1, "vectors of two models"
        assert MODELS[result.model] == result.vectors[0][0]
        assert [v[1] for v in result.vectors] == [code(t) for t in texts]
        allowed = ["A"] if spaces is None else [spaces] if isinstance(spaces, str) else spaces
        assert result.space in allowed

    anyio.run(main, backend=backend)
