"""Fixtures for the gateway's tests: scripted providers behind a router, the gateway over it,
and that gateway served on loopback for the official ``openai`` client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from orchestrator import Chunk, Completion, Embeddings, GenerationParams, Router, ToolCall, Usage
from orchestrator.capabilities import EmbeddingSpace
from orchestrator.config import ProviderConfig
from orchestrator.errors import ProviderError, ServiceUnavailableError
from orchestrator.health import BreakerConfig
from orchestrator.plugins import PluginRegistry
from orchestrator.pricing import Price
from orchestrator.providers.base import BaseProvider
from orchestrator.testing import LoopbackServer
from orchestrator.types import EmbeddingKind, Message
from orchestrator_gateway import Gateway, create_app, hash_key

KEY = "sk-test-alice-0123456789"
OTHER_KEY = "sk-test-bob-0123456789"


class Cut:
    """A scripted stream that breaks after ``text`` reached the caller."""

    def __init__(self, text: str) -> None:
        self.text = text


Answer = str | list[tuple[str, dict[str, Any]]] | ProviderError | Cut


class Scripted(BaseProvider):
    """Answers from a script: text, tool calls ``[(name, arguments)]``, an error to raise, or
    a :class:`Cut` stream; ``default`` when the script is empty. Embeds each text as
    ``[len(text), index, 1.0]``."""

    supports_tools = True
    supports_parallel_tool_calls = True
    supports_structured_output = True
    supports_model_override = True

    def __init__(self, name: str, *answers: Answer, default: str = "", pause: float = 0) -> None:
        # No retries inside the router: each scripted error reaches the gateway at once.
        super().__init__(ProviderConfig(name=name, model=f"{name}-model", max_retries=0))
        self.answers: list[Answer] = list(answers)
        self.default = default or f"hello from {name}"
        self.pause = pause
        self.seen: list[tuple[Sequence[Message], GenerationParams | None]] = []
        self.embedded: list[list[str]] = []
        self.embed_errors: list[ProviderError] = []
        self.streams_ended: list[str] = []

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        raise AssertionError("chat() is implemented")

    async def health_check(self) -> bool:
        return True

    def _next(self, messages: Sequence[Message], params: GenerationParams | None) -> Answer:
        self.seen.append((messages, params))
        answer = self.answers.pop(0) if self.answers else self.default
        if isinstance(answer, ProviderError):
            raise answer
        return answer

    @staticmethod
    def _calls(answer: Answer) -> tuple[ToolCall, ...]:
        if not isinstance(answer, list):
            return ()
        return tuple(ToolCall(f"call_{i}", name, args) for i, (name, args) in enumerate(answer))

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        answer = self._next(messages, params)
        calls = self._calls(answer)
        text = answer if isinstance(answer, str) else ""
        model = params.model if params is not None and params.model else self.config.model
        return Completion(
            text,
            self.name,
            model,
            "tool_calls" if calls else "stop",
            Usage(10, 5, 15),
            tool_calls=calls,
        )

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        answer = self._next(messages, params)
        model = self.config.model
        if isinstance(answer, Cut):
            yield Chunk(answer.text, self.name, model)
            await anyio.sleep(0)
            raise ServiceUnavailableError("the connection dropped", provider=self.name)
        calls = self._calls(answer)
        text = answer if isinstance(answer, str) else ""
        third = max(1, len(text) // 3)
        try:
            for piece in (text[:third], text[third : 2 * third], text[2 * third :]):
                if piece:
                    if self.pause and piece is not text[:third]:
                        await anyio.sleep(self.pause)
                    yield Chunk(piece, self.name, model)
        except BaseException:
            self.streams_ended.append("closed early")
            raise
        self.streams_ended.append("to the end")
        yield Chunk(
            "",
            self.name,
            model,
            "tool_calls" if calls else "stop",
            Usage(10, 5, 15),
            tool_calls=calls,
        )

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        self.embedded.append(list(texts))
        if self.embed_errors:
            raise self.embed_errors.pop(0)
        vectors = [[float(len(text)), float(i), 1.0] for i, text in enumerate(texts)]
        return Embeddings(
            vectors, self.name, "emb", 3, "scripted/emb", Usage(len(texts), 0, len(texts))
        )

    def embedding_space(self) -> EmbeddingSpace | None:
        return EmbeddingSpace("scripted/emb", "emb", 3, 16)


def make_router(*providers: BaseProvider, **options: Any) -> Router:
    options.setdefault("breaker", BreakerConfig(consecutive_failures=100))
    router = Router("first-available", registry=PluginRegistry(), **options)
    for provider in providers:
        router.add_provider(provider, prices={"*": Price("1", "2")})
    return router


def settings(**extra: Any) -> dict[str, Any]:
    """A [gateway] table with two keys: alice (everything) and bob (only `fast`)."""
    table: dict[str, Any] = {
        "keys": {
            "alice": {"key_sha256": hash_key(KEY)},
            "bob": {"key_env": "BOB_KEY", "models": ["fast"]},
        },
        "models": {"fast": {"providers": ["b"], "strategy": "first-available"}},
    }
    table.update(extra)
    return table


ENV = {"BOB_KEY": OTHER_KEY}


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers tests build with (a fixture: test modules cannot import conftest)."""
    return SimpleNamespace(
        Scripted=Scripted,
        Cut=Cut,
        router=make_router,
        settings=settings,
        KEY=KEY,
        OTHER_KEY=OTHER_KEY,
        ENV=ENV,
    )


@pytest.fixture
def gateway_for() -> Callable[..., Gateway]:
    def build(router: Router, **extra: Any) -> Gateway:
        table = settings(**extra)
        if "models" not in extra:  # `fast`: b alone when the router has it, else a
            names = [p.config.name for p in router.providers]
            fast = ["b"] if "b" in names else ["a"]
            table["models"] = {"fast": {"providers": fast, "strategy": "first-available"}}
        return create_app(router, table, env=ENV)

    return build


@pytest.fixture
def serve() -> Iterator[Callable[[Gateway], str]]:
    """Serve a gateway on loopback; returns its /v1 base URL."""
    servers: list[LoopbackServer] = []

    def start(app: Gateway) -> str:
        server = LoopbackServer(app).start()
        servers.append(server)
        return f"{server.base_url}/v1"

    yield start
    for server in servers:
        server.stop()
