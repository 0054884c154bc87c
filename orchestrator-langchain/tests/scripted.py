"""A scripted, tools-capable provider served in-process, the backends the standard suites
run against, and what "the model" answers to each standard test's prompt.

The standard integration tests send prompts such as "What is the value of
magic_function(3)? Use the tool." and check the answer (a call of ``magic_function`` with
``{"input": 3}``). Neither the in-process provider nor the vendor emulators are language
models, so what the model says to each such prompt is scripted through the
:class:`~orchestrator.testing.ScriptableModel` interface (``call_tools_next``,
``reply_next``), which both implement. Everything else is the real path: LangChain ->
ChatOrchestrator -> Router (tool/schema validation, failover) -> provider -> (for the
emulators) HTTP on loopback -> the vendor's wire format and back.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from orchestrator import Router
from orchestrator.capabilities import EmbeddingSpace
from orchestrator.config import ProviderConfig
from orchestrator.providers.base import BaseProvider
from orchestrator.tools import new_call_id
from orchestrator.types import (
    Chunk,
    Completion,
    EmbeddingKind,
    Embeddings,
    GenerationParams,
    Message,
    ToolCall,
    Usage,
)

DIMENSION = 8
JOKE = (
    '{"setup": "Why did the cat sit on the computer?", "punchline": "To keep an eye on the mouse."}'
)
JOKE_SETUP_ONLY = '{"setup": "Why did the cat sit on the computer?"}'


class ScriptedConfig(ProviderConfig):
    model: str | None = "scripted-1"


class ScriptedProvider(BaseProvider):
    """An in-memory model with tools, parallel calls, structured output, per-request models
    and embeddings. Unscripted, it answers "Hello! You said: <last user message>" (cut at
    the first stop sequence); scripted, it answers exactly what it was told."""

    config_class = ScriptedConfig
    supports_tools = True
    supports_parallel_tool_calls = True
    supports_structured_output = True
    supports_model_override = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._script: deque[tuple[str, Any]] = deque()
        self.requests: list[tuple[tuple[Message, ...], GenerationParams | None]] = []
        self._ids = itertools.count(1)

    # -- ScriptableModel -------------------------------------------------------------------

    def call_tools_next(self, *calls: tuple[str, Mapping[str, Any]], times: int = 1) -> None:
        self._script.extend([("tools", list(calls))] * times)

    def reply_next(self, text: str, *, times: int = 1) -> None:
        self._script.extend([("reply", text)] * times)

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()

    # -- the model --------------------------------------------------------------------------

    def _answer(
        self, messages: Sequence[Message], params: GenerationParams | None
    ) -> tuple[str, tuple[ToolCall, ...]]:
        self.requests.append((tuple(messages), params))
        if self._script:
            kind, value = self._script.popleft()
            if kind == "tools":
                return "", tuple(ToolCall(new_call_id(), n, dict(a)) for n, a in value)
            return str(value), ()
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        text = f"Hello! You said: {last}"
        for stop in (params.stop if params else None) or ():
            text = text.split(stop, 1)[0]
        return text, ()

    def _model(self, params: GenerationParams | None) -> str | None:
        return (params.model if params else None) or self.config.model

    @staticmethod
    def _usage(messages: Sequence[Message], text: str) -> Usage:
        prompt = sum(len(m.content.split()) + 1 for m in messages)
        completion = max(len(text.split()), 1)
        return Usage(prompt, completion, prompt + completion)

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        return (await self.chat([Message("user", prompt)], params)).text

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        text, calls = self._answer(messages, params)
        return Completion(
            text=text,
            provider=self.config.name,
            model=self._model(params),
            finish_reason="tool_calls" if calls else "stop",
            usage=self._usage(messages, text),
            request_id=f"scripted-{next(self._ids)}",
            tool_calls=calls,
        )

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        text, calls = self._answer(messages, params)
        model = self._model(params)
        words = text.split(" ") if text else []
        for index, word in enumerate(words):
            yield Chunk(word if index == 0 else " " + word, self.config.name, model)
            await anyio.lowlevel.checkpoint()
        yield Chunk(
            "",
            self.config.name,
            model,
            finish_reason="tool_calls" if calls else "stop",
            usage=self._usage(messages, text),
            request_id=f"scripted-{next(self._ids)}",
            tool_calls=calls,
        )

    def embedding_space(self) -> EmbeddingSpace:
        return EmbeddingSpace("scripted/emb", "emb-1", DIMENSION, 16)

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        vectors = [
            [b / 255 for b in hashlib.sha256(f"{kind}:{t}".encode()).digest()[:DIMENSION]]
            for t in texts
        ]
        usage = Usage(len(texts), 0, len(texts))
        return Embeddings(vectors, self.config.name, "emb-1", DIMENSION, "scripted/emb", usage)

    async def health_check(self) -> bool:
        return True


# -- what the model says to each standard test ------------------------------------------------

Step = tuple[str, Any, int]  # ("tools", [(name, arguments)], times) | ("reply", text, times)


def _tools(name: str, arguments: Mapping[str, Any], times: int = 1) -> Step:
    return ("tools", [(name, arguments)], times)


#: By the standard test's name: the answers its prompts get, in order.
SCRIPTS: dict[str, list[Step]] = {
    "test_tool_calling": [_tools("magic_function", {"input": 3}, 2)],
    "test_tool_calling_async": [_tools("magic_function", {"input": 3}, 2)],
    "test_tool_choice": [_tools("magic_function", {"input": 3}, 2)],
    "test_bind_runnables_as_tools": [_tools("greeting_generator", {"answer_style": "pirate"})],
    "test_tool_calling_with_no_arguments": [_tools("magic_function_no_args", {}, 2)],
    "test_structured_few_shot_examples": [_tools("my_adder_tool", {"a": 3, "b": 4})],
    "test_agent_loop": [
        _tools("get_weather", {"location": "San Francisco, CA"}),
        ("reply", "It's sunny in San Francisco.", 1),
    ],
    "test_unicode_tool_call_integration": [
        _tools("unicode_customer", {"customer_name": "你好啊集团", "description": "科技公司"}),
        _tools("unicode_customer", {"customer_name": "こんにちは株式会社", "description": "会社"}),
    ],
    "test_structured_output": [("reply", JOKE, 2)],
    "test_structured_output_async": [("reply", JOKE, 2)],
    "test_structured_output_pydantic_2_v1": [("reply", JOKE, 4)],
    "test_structured_output_optional_param": [
        ("reply", JOKE_SETUP_ONLY, 1),
        ("reply", JOKE, 3),
    ],
    "test_json_mode": [("reply", JOKE, 4)],
}


_JOKE_ARGS = {
    "setup": "Why did the cat sit on the computer?",
    "punchline": "To keep an eye on the mouse.",
}


def _joke_calls(*names: str, setup_only: bool = False) -> list[Step]:
    arguments = {"setup": _JOKE_ARGS["setup"]} if setup_only else _JOKE_ARGS
    return [_tools(name, arguments) for name in names]


def _as_calls(test_name: str, schema_type: str | None) -> list[Step] | None:
    """The structured-output tests' answers when the schema is a forced tool call
    (``method="function_calling"``): a call of the tool named after the schema."""
    joke = "JokeDict" if schema_type == "typeddict" else "Joke"
    if test_name in ("test_structured_output", "test_structured_output_async"):
        return _joke_calls(joke, joke)
    if test_name == "test_structured_output_pydantic_2_v1":
        return _joke_calls("Joke", "Joke", "Joke", "Joke")
    if test_name == "test_structured_output_optional_param":
        return [
            *_joke_calls("Joke", setup_only=True),
            *_joke_calls("Joke", "Joke", "JokeDict"),
        ]
    return None


class Scriptable(Protocol):
    """orchestrator.testing.ScriptableModel's scripting methods."""

    def call_tools_next(self, *calls: tuple[str, Mapping[str, Any]], times: int = 1) -> None: ...

    def reply_next(self, text: str, *, times: int = 1) -> None: ...


def script(
    model: Scriptable,
    test_name: str,
    *,
    method: str = "json_schema",
    schema_type: str | None = None,
) -> None:
    """Tell ``model`` what to answer to the prompts of the standard test ``test_name``
    (``method``: how the test class asks for structured output)."""
    steps = _as_calls(test_name, schema_type) if method == "function_calling" else None
    for kind, value, times in SCRIPTS.get(test_name, []) if steps is None else steps:
        if kind == "tools":
            model.call_tools_next(*value, times=times)
        else:
            model.reply_next(value, times=times)


@dataclass
class Backend:
    """What the standard suites run against: a router, the scriptable model(s) behind it,
    and a model name its providers accept per request."""

    name: str
    router: Router
    models: list[Scriptable] = field(default_factory=list)
    model_override: str | None = None

    def script(
        self, test_name: str, *, method: str = "json_schema", schema_type: str | None = None
    ) -> None:
        for model in self.models:
            script(model, test_name, method=method, schema_type=schema_type)


def scripted_backend() -> Iterator[Backend]:
    provider = ScriptedProvider(ScriptedConfig(name="scripted"))
    router = Router()
    router.add_provider(provider)
    yield Backend("scripted", router, [provider], model_override="scripted-2")
