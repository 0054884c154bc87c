"""Embeddings: one request's texts, split into batches, each batch answered through the
engine by providers of **one vector space only**.

Vectors of two models are not comparable, so one ``Router.embed`` call is answered from a
single space: every batch fails over only between providers of that space. When every
provider of the space failed, the caller may have named further spaces (in order); the
whole request then starts again in the next one - it never returns batches of two spaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from orchestrator._routing.engine import contract_error
from orchestrator.events import UsageEvent
from orchestrator.types import Embeddings, Usage

if TYPE_CHECKING:
    from orchestrator._routing.accounting import Ledger
    from orchestrator._routing.call import Call, Lease
    from orchestrator.capabilities import EmbeddingSpace
    from orchestrator.health import ProviderSlot
    from orchestrator.types import EmbeddingKind


@dataclass(slots=True)
class EmbedBatch:
    """Embeds one batch on a provider (bounded by the slot's attempt ``timeout``)."""

    texts: Sequence[str]
    kind: EmbeddingKind
    space: EmbeddingSpace
    ledger: Ledger

    timeout_message = (
        "Attempt timeout of {:g}s fired; raise add_provider(timeout=...) if the model needs longer"
    )

    @staticmethod
    def timeout(slot: ProviderSlot) -> float | None:
        return slot.timeout

    async def run(self, call: Call, lease: Lease) -> Embeddings:
        slot = lease.slot
        result = await slot.provider.embed(self.texts, kind=self.kind)
        if not isinstance(result, Embeddings):
            raise contract_error(slot, "embed()", result, "Embeddings")
        vectors = result.vectors
        if len(vectors) != len(self.texts):
            raise contract_error(
                slot, "embed()", vectors, f"{len(self.texts)} vectors (one per text)"
            )
        dimension = self.space.dimension
        for vector in vectors:
            if len(vector) != dimension:
                raise contract_error(
                    slot, "embed()", vector, f"a vector of {dimension} numbers ({self.space.name})"
                )
        usage = result.usage
        lease.succeeded(None if usage is None else usage.total_tokens)
        cost = self.ledger.account(slot, usage, result.model)
        if self.ledger.on_usage is not None:
            await self.ledger.report(
                UsageEvent(slot.name, result.model, usage, cost, None, "embed")
            )
        return Embeddings(vectors, slot.name, result.model, dimension, self.space.name, usage, cost)


def batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def merge(results: Sequence[Embeddings], space: EmbeddingSpace) -> Embeddings:
    """One answer from the batches' answers (all of one space), in the texts' order."""
    vectors = [vector for result in results for vector in result.vectors]
    usages = [r.usage for r in results if r.usage is not None]
    usage = None
    if usages:
        prompt = sum(u.prompt_tokens for u in usages)
        usage = Usage(prompt, 0, sum(u.total_tokens for u in usages) or prompt)
    costs = [r.cost for r in results if r.cost is not None]
    providers = list(dict.fromkeys(r.provider for r in results))
    return Embeddings(
        vectors,
        providers[0] if len(providers) == 1 else ",".join(providers),
        results[0].model,
        space.dimension,
        space.name,
        usage,
        sum(costs, Decimal(0)) if len(costs) == len(results) else None,
    )


def max_batch(slots: Sequence[ProviderSlot]) -> int:
    """The largest batch every provider of a space takes."""
    sizes = [s.embedding_space.max_batch for s in slots if s.embedding_space is not None]
    return min(sizes) if sizes else 1
