"""Tools and structured output through the router: requests go only to providers that can
serve them, answers are checked before they count, and a bad answer fails over (or raises)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrator import (
    AllProvidersFailedError,
    Chunk,
    Completion,
    GenerationParams,
    InvalidToolCallError,
    Message,
    Router,
    StructuredOutputError,
    ToolCall,
    UnsupportedCapabilityError,
    Usage,
)
from orchestrator.config import ProviderConfig
from orchestrator.plugins import PluginRegistry
from orchestrator.pricing import Price
from orchestrator.providers.base import BaseProvider

pytestmark = pytest.mark.anyio


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"8°C in {city}"


class City(BaseModel):
    name: str
    population: int


class Plain(BaseProvider):
    """A provider that only generates text: no tools, no structured output."""

    def __init__(self, name: str) -> None:
        super().__init__(ProviderConfig(name=name, model="plain"))
        self.calls = 0

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        self.calls += 1
        return "plain answer"

    async def health_check(self) -> bool:
        return True


class Scripted(BaseProvider):
    """Answers from a script: each answer is text, or tool calls ``[(name, arguments)]``."""

    supports_tools = True
    supports_parallel_tool_calls = True
    supports_structured_output = True

    def __init__(self, name: str, *answers: str | list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__(ProviderConfig(name=name, model="scripted"))
        self.answers = list(answers)
        self.seen: list[tuple[Sequence[Message], GenerationParams | None]] = []

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        raise AssertionError("chat() is implemented")

    async def health_check(self) -> bool:
        return True

    def _next(
        self, messages: Sequence[Message], params: GenerationParams | None
    ) -> tuple[str, tuple[ToolCall, ...]]:
        self.seen.append((messages, params))
        answer = self.answers.pop(0)
        if isinstance(answer, str):
            return answer, ()
        calls = tuple(
            ToolCall(f"{self.name}-{i}", name, args) for i, (name, args) in enumerate(answer)
        )
        return "", calls

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        text, calls = self._next(messages, params)
        return Completion(
            text,
            self.name,
            "scripted",
            "tool_calls" if calls else "stop",
            Usage(10, 5, 15),
            tool_calls=calls,
        )

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        text, calls = self._next(messages, params)
        half = len(text) // 2
        for piece in (text[:half], text[half:]):
            if piece:
                yield Chunk(piece, self.name, "scripted")
        yield Chunk(
            "",
            self.name,
            "scripted",
            "tool_calls" if calls else "stop",
            Usage(10, 5, 15),
            tool_calls=calls,
        )


def router(*providers: BaseProvider, **options: Any) -> Router:
    r = Router("first-available", registry=PluginRegistry(), **options)
    for provider in providers:
        r.add_provider(provider, prices={"*": Price("1", "2")})
    return r


WEATHER = {"tools": [get_weather]}


def test_capabilities_come_from_what_a_provider_implements() -> None:
    assert Plain.capabilities().names() == []
    assert Scripted.capabilities().names() == [
        "chat",
        "streaming",
        "tools",
        "parallel_tool_calls",
        "structured_output",
    ]

    class SaysToolsButHasNoChat(Plain):
        supports_tools = True

    assert not SaysToolsButHasNoChat.capabilities().tools


async def test_tool_round_trip() -> None:
    provider = Scripted("a", [("get_weather", {"city": "Moscow"})], "It is 8°C in Moscow.")
    r = router(provider)
    question = [Message("user", "Weather in Moscow?")]
    first = await r.chat(question, WEATHER)
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Moscow"})
    result = get_weather(**call.arguments)
    history = [
        *question,
        Message("assistant", first.text, first.tool_calls),
        Message.tool_result(call, result),
    ]
    final = await r.chat(history, WEATHER)
    assert final.text == "It is 8°C in Moscow."
    assert final.tool_calls == ()
    sent, params = provider.seen[-1]
    assert sent[-1] == Message("tool", "8°C in Moscow", (), call.id, "get_weather")
    assert params is not None and params.tools is not None


async def test_tools_request_skips_providers_without_tools() -> None:
    plain = Plain("plain")
    tools = Scripted("tools", [("get_weather", {"city": "Paris"})])
    r = router(plain, tools)
    completion = await r.chat("Weather in Paris?", WEATHER)
    assert completion.provider == "tools"
    assert plain.calls == 0
    # Plain chat still goes to the first provider.
    assert (await r.chat("hi")).provider == "plain"


async def test_no_capable_provider_fails_before_any_call() -> None:
    plain = Plain("plain")
    r = router(plain, Plain("other"))
    with pytest.raises(UnsupportedCapabilityError, match="needs tools") as info:
        await r.chat("Weather?", WEATHER)
    assert info.value.capability == "tools"
    assert "plain, other" in str(info.value)
    with pytest.raises(UnsupportedCapabilityError, match="structured output"):
        await r.chat("City?", {"response_format": City})
    with pytest.raises(UnsupportedCapabilityError):
        await r.chat("City?", {"response_format": City}, provider="plain")
    stream = r.chat_stream("Weather?", WEATHER)
    with pytest.raises(UnsupportedCapabilityError):
        await stream.__anext__()
    # A tool result in the history needs tools too, even without tools in the request.
    call = ToolCall("c1", "get_weather", {"city": "X"})
    with pytest.raises(UnsupportedCapabilityError, match="needs tools"):
        await r.chat([Message("assistant", "", (call,)), Message.tool_result(call, "8")])
    assert plain.calls == 0


async def test_parallel_calls_in_history_need_parallel_support() -> None:
    class Serial(Scripted):
        supports_parallel_tool_calls = False

    serial = Serial("serial", "never")
    parallel = Scripted("parallel", "Both are sunny.")
    r = router(serial, parallel)
    calls = (
        ToolCall("1", "get_weather", {"city": "A"}),
        ToolCall("2", "get_weather", {"city": "B"}),
    )
    history = [
        Message("user", "A and B?"),
        Message("assistant", "", calls),
        *(Message.tool_result(c, "sunny") for c in calls),
    ]
    completion = await r.chat(history, WEATHER)
    assert completion.provider == "parallel"
    assert serial.seen == []
    with pytest.raises(UnsupportedCapabilityError, match="parallel tool calls together with tools"):
        await router(Serial("only", "x")).chat(history, WEATHER)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([("delete_everything", {})], "not among the request's tools"),
        ([("get_weather", {"town": "Moscow"})], "'city' is a required property"),
    ],
)
async def test_bad_tool_call_fails_over(
    answer: list[tuple[str, dict[str, Any]]], message: str
) -> None:
    bad = Scripted("bad", answer)
    good = Scripted("good", [("get_weather", {"city": "Moscow"})])
    r = router(bad, good)
    completion = await r.chat("Weather?", WEATHER)
    assert completion.provider == "good"
    # The bad answer was billed, and the provider is healthy (it answered).
    stats = r.stats()["providers"]["bad"]
    assert stats["breaker"]["state"] == "closed"
    assert stats["failures"] == 0
    assert Decimal(r.stats()["spent"]) == 2 * (10 * Decimal(1) + 5 * Decimal(2)) / 1000

    strict = router(Scripted("bad", answer), Scripted("good", "unused"), on_invalid_output="raise")
    with pytest.raises(InvalidToolCallError, match=message) as info:
        await strict.chat("Weather?", WEATHER)
    assert info.value.provider == "bad"
    assert strict.get_provider("good").seen == []  # type: ignore[attr-defined]


async def test_tool_call_with_tool_choice_none_is_invalid() -> None:
    r = router(Scripted("a", [("get_weather", {"city": "X"})]), on_invalid_output="raise")
    with pytest.raises(InvalidToolCallError, match="tool_choice was 'none'"):
        await r.chat("Weather?", {"tools": [get_weather], "tool_choice": "none"})


async def test_structured_output_is_parsed() -> None:
    r = router(Scripted("a", '{"name": "Kazan", "population": 1300000}'))
    completion = await r.chat("Biggest city on the Volga?", {"response_format": City})
    assert completion.parsed == City(name="Kazan", population=1300000)


async def test_invalid_structured_output_fails_over_then_reports_every_raw_text() -> None:
    r = router(Scripted("a", "Kazan, about 1.3 million"), Scripted("b", '{"name": "Kazan"}'))
    with pytest.raises(AllProvidersFailedError) as info:
        await r.chat("City?", {"response_format": City})
    errors = info.value.errors
    assert [type(e) for e in errors] == [StructuredOutputError, StructuredOutputError]
    assert [e.raw_text for e in errors] == ["Kazan, about 1.3 million", '{"name": "Kazan"}']  # type: ignore[attr-defined]
    assert [e.provider for e in errors] == ["a", "b"]  # type: ignore[attr-defined]
    strict = router(Scripted("a", "not json"), on_invalid_output="raise")
    with pytest.raises(StructuredOutputError, match="not JSON") as raised:
        await strict.chat("City?", {"response_format": City})
    assert raised.value.raw_text == "not json"


async def collect(stream: Any) -> list[Chunk]:
    async with contextlib.aclosing(stream):
        return [chunk async for chunk in stream]


async def test_streamed_tool_calls_arrive_whole() -> None:
    calls = [("get_weather", {"city": "A"}), ("get_weather", {"city": "B"})]
    r = router(Scripted("a", calls))
    chunks = await collect(r.chat_stream("A and B?", WEATHER))
    final = chunks[-1]
    assert final.finish_reason == "tool_calls"
    assert [dict(c.arguments) for c in final.tool_calls] == [{"city": "A"}, {"city": "B"}]
    assert all(isinstance(c, ToolCall) for chunk in chunks for c in chunk.tool_calls)


async def test_streamed_bad_tool_call_fails_over_before_anything_is_delivered() -> None:
    r = router(Scripted("bad", [("nope", {})]), Scripted("good", [("get_weather", {"city": "A"})]))
    chunks = await collect(r.chat_stream("Weather?", WEATHER))
    assert chunks[-1].provider == "good"
    assert Decimal(r.stats()["spent"]) > 0  # the bad answer's usage was accounted


async def test_streamed_structured_output() -> None:
    r = router(Scripted("a", '{"name": "Kazan", "population": 1300000}'))
    chunks = await collect(r.chat_stream("City?", {"response_format": City}))
    assert "".join(c.delta for c in chunks) == '{"name": "Kazan", "population": 1300000}'
    assert chunks[-1].parsed == City(name="Kazan", population=1300000)
    assert all(c.parsed is None for c in chunks[:-1])
    bad = router(Scripted("a", '{"name": "Kazan"}'), Scripted("b", "unused"))
    received: list[str] = []
    with pytest.raises(StructuredOutputError, match="does not match City") as info:
        async with contextlib.aclosing(bad.chat_stream("City?", {"response_format": City})) as s:
            async for chunk in s:
                received.append(chunk.delta)
    # The text already streamed cannot be taken back: no failover, the error has it all.
    assert info.value.raw_text == '{"name": "Kazan"}' == "".join(received)
    assert info.value.provider == "a"
