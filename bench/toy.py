"""The toy row: a Router over an in-process provider that answers at once (no HTTP, no
parsing). It times the Router's own bookkeeping alone, which is *not* what a user's call
costs: the full-stack rows (:mod:`fullstack`) are that."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from _common import Spread, Table, interleaved

from orchestrator import Router
from orchestrator.plugins import PluginRegistry
from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig
from orchestrator.types import Chunk, Completion, Message, Usage


class InProcess(BaseProvider):
    """Answers at once: what remains is the router's own cost."""

    chunks = 1000
    usage = Usage(1, 1, 2)

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        return "ok"

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        return Completion("ok", provider=self.config.name, usage=self.usage)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        name = self.config.name
        for _ in range(self.chunks - 1):
            yield Chunk("x", provider=name)
        yield Chunk("", provider=name, finish_reason="stop", usage=self.usage)

    async def health_check(self) -> bool:
        return True


async def measure(n: int, rounds: int) -> dict[str, Spread]:
    provider = InProcess(ProviderConfig(name="inproc"))
    router = Router(registry=PluginRegistry(entry_points=False))
    router.add_provider(provider)
    one = (Message("user", "hi"),)
    many = tuple(Message("user" if i % 2 else "assistant", f"m{i}") for i in range(500))

    async def drain_provider() -> None:
        async for _ in provider.stream(one):
            pass

    async def drain_router() -> None:
        async for _ in router.chat_stream(one):
            pass

    out = {k: Spread() for k in ("p50", "p99", "p50_500", "per_chunk")}
    for _ in range(rounds):
        t = await interleaved(
            {"provider": lambda: provider.chat(one), "router": lambda: router.chat(one)},
            n,
            warmup=n // 10,
        )
        out["p50"].add(t["router"].p50 - t["provider"].p50)
        out["p99"].add(t["router"].p99 - t["provider"].p99)
        t = await interleaved(
            {"provider": lambda: provider.chat(many), "router": lambda: router.chat(many)},
            n // 4,
            warmup=10,
        )
        out["p50_500"].add(t["router"].p50 - t["provider"].p50)
        t = await interleaved(
            {"provider": drain_provider, "router": drain_router}, max(10, n // 100), warmup=3
        )
        out["per_chunk"].add((t["router"].p50 - t["provider"].p50) / InProcess.chunks)
    return out


def table(results: dict[str, Spread]) -> Table:
    out = Table(
        "Toy: Router over an in-process provider (the Router's own bookkeeping only; µs)",
        ["added by the Router"],
        note="No HTTP and no parsing: a lower bound, not what a call costs. "
        "Median of rounds, min … max.",
    )
    out.add("call, 1 message, p50", results["p50"].text())
    out.add("call, 1 message, p99", results["p99"].text())
    out.add("call, 500 messages, p50", results["p50_500"].text())
    out.add(f"stream, per chunk ({InProcess.chunks} chunks)", results["per_chunk"].text(2))
    return out
