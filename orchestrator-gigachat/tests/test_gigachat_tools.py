"""Function calling, structured output and embeddings: GigaChatProvider and the Router
against the emulator over real HTTP, on asyncio and trio."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrator import Router
from orchestrator.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    InvalidRequestError,
    InvalidToolCallError,
    ProviderError,
    StreamError,
    StructuredOutputError,
)
from orchestrator.types import Chunk, GenerationParams, Message, ToolCall
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import CallFunction, GigaChatEmulator, InvalidArguments, Reply

pytestmark = pytest.mark.anyio

Make = Callable[..., GigaChatProvider]


def get_weather(city: str, days: int = 1) -> dict[str, Any]:
    """The weather forecast for a city."""
    return {"city": city, "days": days, "temperature": 21}


class Forecast(BaseModel):
    city: str
    temperature: int


def sent(emulator: GigaChatEmulator, index: int = -1) -> dict[str, Any]:
    """The JSON body of the ``index``-th chat call the emulator received."""
    calls = [r for r in emulator.requests if r.path.endswith("/chat/completions")]
    body: dict[str, Any] = json.loads(calls[index].body)
    return body


def router_with(*providers: GigaChatProvider, **options: Any) -> Router:
    router = Router(**options)
    for provider in providers:
        router.add_provider(provider)
    return router


async def collect(router: Router, messages: Any, params: Any) -> list[Chunk]:
    async with aclosing(router.chat_stream(messages, params)) as stream:
        return [chunk async for chunk in stream]


# -- tool round trip through the Router -----------------------------------------------------


async def test_tool_round_trip_through_the_router(make_provider: Make, emulator) -> None:
    router = router_with(make_provider())
    params = {"tools": [get_weather]}
    messages: list[Message] = [Message("user", "What is the weather in Kazan? use get_weather")]
    async with router:
        first = await router.chat(messages, params)
        assert first.finish_reason == "tool_calls" and first.text == ""
        (call,) = first.tool_calls
        assert call.name == "get_weather" and isinstance(call.arguments["city"], str)
        assert call.id.startswith("call_")
        state_id = first.extra["functions_state_id"]
        assert call.id == f"call_{uuid.UUID(state_id).hex}"
        wire = sent(emulator)
        assert wire["functions"][0]["name"] == "get_weather"
        assert wire["functions"][0]["parameters"]["required"] == ["city"]
        assert "function_call" not in wire  # no tool_choice: GigaChat decides

        messages += [
            Message("assistant", "", tool_calls=first.tool_calls),
            Message.tool_result(call, get_weather(**call.arguments)),
        ]
        final = await router.chat(messages, params)
    assert final.finish_reason == "stop" and not final.tool_calls
    assert "get_weather returned" in final.text and '"temperature": 21' in final.text
    history = sent(emulator)["messages"]
    assert history[1] == {
        "role": "assistant",
        "content": "",
        "function_call": {"name": "get_weather", "arguments": dict(call.arguments)},
        "functions_state_id": state_id,
    }
    assert history[2]["role"] == "function" and history[2]["name"] == "get_weather"
    assert json.loads(history[2]["content"])["temperature"] == 21


async def test_streamed_tool_round_trip_through_the_router(make_provider: Make, emulator) -> None:
    router = router_with(make_provider())
    params = {"tools": [get_weather], "tool_choice": "get_weather"}
    messages: list[Message] = [Message("user", "Kazan")]
    async with router:
        chunks = await collect(router, messages, params)
        final = chunks[-1]
        assert final.finish_reason == "tool_calls"
        (call,) = final.tool_calls
        assert call.arguments == {"city": "Kazan", "days": 1}
        assert sent(emulator)["function_call"] == {"name": "get_weather"}
        messages += [
            Message("assistant", "", tool_calls=final.tool_calls),
            Message.tool_result(call, "sunny"),
        ]
        answer = await collect(router, messages, {"tools": [get_weather]})
    assert answer[-1].finish_reason == "stop" and not answer[-1].tool_calls
    text = "".join(c.delta for c in answer)
    assert text == 'GigaChat emulator: get_weather returned "sunny"'
    # A result that is not JSON goes out JSON-encoded, as langchain-gigachat sends it.
    assert sent(emulator)["messages"][-1]["content"] == '"sunny"'


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("arguments", [{"city": "Омск", "days": 3}, '{"city": "Омск", "days": 3}'])
async def test_streamed_call_is_reassembled(
    provider: GigaChatProvider, emulator, split: bool, arguments: Any
) -> None:
    emulator.call_function_next("get_weather", arguments, split=split, state_id=None)
    params = GenerationParams(tools=[get_weather])
    async with aclosing(provider.stream([Message("user", "Омск")], params)) as stream:
        chunks = [chunk async for chunk in stream]
    assert [c.tool_calls for c in chunks[:-1]] == [()] * (len(chunks) - 1)
    (call,) = chunks[-1].tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Омск", "days": 3})
    assert chunks[-1].finish_reason == "tool_calls"
    assert call.id.startswith("call_")  # made up (no state id)


async def test_a_scripted_call_without_state_id(provider: GigaChatProvider, emulator) -> None:
    emulator.script(CallFunction("get_weather", {"city": "Tver"}, state_id=None))
    completion = await provider.chat("hi", GenerationParams(tools=[get_weather]))
    assert "functions_state_id" not in completion.extra
    (call,) = completion.tool_calls
    await provider.chat(
        [
            Message("user", "hi"),
            Message("assistant", "", tool_calls=completion.tool_calls),
            Message.tool_result(call, {"t": 1}),
        ],
        GenerationParams(tools=[get_weather]),
    )
    assert "functions_state_id" not in sent(emulator)["messages"][1]


async def test_tool_choice_mapping(provider: GigaChatProvider, emulator) -> None:
    def other(x: int) -> int:
        """Another tool."""
        return x

    await provider.chat("hi", GenerationParams(tools=[get_weather, other], tool_choice="auto"))
    assert sent(emulator)["function_call"] == "auto"
    none = await provider.chat(
        "hi", GenerationParams(tools=[get_weather, other], tool_choice="none")
    )
    assert sent(emulator)["function_call"] == "none" and not none.tool_calls
    await provider.chat("hi", GenerationParams(tools=[get_weather], tool_choice="required"))
    assert sent(emulator)["function_call"] == {"name": "get_weather"}
    forced = await provider.chat(
        "hi", GenerationParams(tools=[get_weather, other], tool_choice="other")
    )
    assert forced.tool_calls[0].name == "other" and forced.tool_calls[0].arguments == {"x": 1}


async def test_what_gigachat_cannot_do_is_refused_before_any_call(
    make_provider: Make, emulator
) -> None:
    provider = make_provider()

    def other(x: int) -> int:
        """Another tool."""
        return x

    with pytest.raises(InvalidRequestError, match="cannot require 'some tool' among 2"):
        await provider.chat(
            "hi", GenerationParams(tools=[get_weather, other], tool_choice="required")
        )
    with pytest.raises(InvalidRequestError, match="one function per answer"):
        await provider.chat("hi", GenerationParams(tools=[get_weather], parallel_tool_calls=True))
    two = (ToolCall("a", "get_weather", {"city": "A"}), ToolCall("b", "get_weather", {"city": "B"}))
    with pytest.raises(InvalidRequestError, match="one function call per assistant message"):
        await provider.chat(
            [
                Message("user", "hi"),
                Message("assistant", "", tool_calls=two),
                Message.tool_result(two[0], 1),
                Message.tool_result(two[1], 2),
            ],
            GenerationParams(tools=[get_weather]),
        )
    function_mode = make_provider(structured_output="function")
    with pytest.raises(InvalidRequestError, match="structured_output='native'"):
        await function_mode.chat(
            "hi", GenerationParams(tools=[get_weather], response_format=Forecast)
        )
    assert emulator.request_count == 0

    # The router skips the provider with the reason, before any network call.
    router = router_with(provider)
    async with router:
        with pytest.raises(ProviderError, match="one function per answer"):
            await router.chat("hi", {"tools": [get_weather], "parallel_tool_calls": True})
    assert emulator.request_count == 0


async def test_invalid_arguments_are_a_typed_error(provider: GigaChatProvider, emulator) -> None:
    emulator.invalid_arguments_next()
    params = GenerationParams(tools=[get_weather])
    with pytest.raises(InvalidToolCallError, match="invalid arguments") as caught:
        await provider.chat("hi", params)
    assert json.loads(caught.value.raw_text)["name"] == "get_weather"
    assert caught.value.provider == provider.name
    emulator.script(InvalidArguments("get_weather", {"city": 5}))
    with pytest.raises(InvalidToolCallError):
        async with aclosing(provider.stream("hi", params)) as stream:
            async for _ in stream:
                pass


async def test_router_checks_arguments_against_the_schema(make_provider: Make, emulator) -> None:
    router = router_with(make_provider(), on_invalid_output="raise")
    emulator.call_function_next("get_weather", {"days": "many"})
    async with router:
        with pytest.raises(InvalidToolCallError) as caught:
            await router.chat("hi", {"tools": [get_weather]})
    assert "days" in caught.value.raw_text


async def test_malformed_function_calls(provider: GigaChatProvider, emulator) -> None:
    emulator.script(CallFunction("get_weather", "not json"))
    with pytest.raises(InvalidToolCallError, match="not a JSON object") as caught:
        await provider.chat("hi", GenerationParams(tools=[get_weather]))
    assert caught.value.raw_text == "not json" and caught.value.provider == provider.name
    emulator.script(CallFunction("get_weather", 5))
    with pytest.raises(StreamError, match="malformed function call"):
        async with aclosing(provider.stream("hi", GenerationParams(tools=[get_weather]))) as s:
            async for _ in s:
                pass


# -- structured output ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["native", "function"])
async def test_structured_output_returns_a_validated_model(
    make_provider: Make, emulator, mode: str
) -> None:
    router = router_with(make_provider(structured_output=mode))
    async with router:
        completion = await router.chat("Kazan", {"response_format": Forecast})
        assert completion.parsed == Forecast(city="Kazan", temperature=1)
        wire = sent(emulator)
        chunks = await collect(router, "Kazan", {"response_format": Forecast})
    assert chunks[-1].parsed == Forecast(city="Kazan", temperature=1)
    if mode == "native":
        assert wire["response_format"]["type"] == "json_schema"
        assert wire["response_format"]["strict"] is True
        assert wire["response_format"]["schema"]["required"] == ["city", "temperature"]
        assert "functions" not in wire
    else:
        assert "response_format" not in wire
        assert wire["function_call"] == {"name": "Forecast"}
        assert wire["functions"][0]["parameters"]["required"] == ["city", "temperature"]
        assert completion.finish_reason == "stop" and not completion.tool_calls


@pytest.mark.parametrize("mode", ["native", "function"])
async def test_an_answer_that_does_not_validate(make_provider: Make, emulator, mode: str) -> None:
    router = router_with(make_provider(structured_output=mode), on_invalid_output="raise")
    bad = '{"city": "Kazan", "temperature": "hot"}'
    step = Reply(bad) if mode == "native" else CallFunction("Forecast", json.loads(bad))
    emulator.script(step)
    async with router:
        with pytest.raises(StructuredOutputError) as caught:
            await router.chat("Kazan", {"response_format": Forecast})
    assert json.loads(caught.value.raw_text) == json.loads(bad)
    assert any("temperature" in e for e in caught.value.errors)


async def test_an_invalid_answer_fails_over_by_default(make_provider: Make, emulator) -> None:
    router = router_with(make_provider(name="one"), make_provider(name="two"))
    emulator.reply_next("not JSON at all")
    async with router:
        completion = await router.chat("Kazan", {"response_format": Forecast})
    assert completion.provider == "two" and completion.parsed.city == "Kazan"


async def test_structured_error_answer_in_function_mode(make_provider: Make, emulator) -> None:
    provider = make_provider(structured_output="function")
    emulator.invalid_arguments_next("Forecast")
    with pytest.raises(StructuredOutputError) as caught:
        await provider.chat("hi", GenerationParams(response_format=Forecast))
    assert not isinstance(caught.value, InvalidToolCallError)


async def test_any_json_object(make_provider: Make, emulator) -> None:
    for mode in ("native", "function"):
        router = router_with(make_provider(structured_output=mode))
        async with router:
            completion = await router.chat("hi", {"response_format": "json_object"})
        assert completion.parsed == {}


# -- embeddings -----------------------------------------------------------------------------


async def test_embeddings_order_dimension_and_batches(make_provider: Make, emulator) -> None:
    provider = make_provider(embedding_max_batch=3)
    router = router_with(provider)
    texts = [f"text number {i}" for i in range(8)]
    async with router:
        result = await router.embed(texts)
        singles = [await router.embed([t]) for t in texts]
    assert result.space == "gigachat/Embeddings" and result.model == "Embeddings"
    assert result.dimension == 1024 and len(result) == 8
    assert all(len(v) == 1024 for v in result.vectors)
    assert [list(v) for v in result.vectors] == [list(s.vectors[0]) for s in singles]
    batches = [json.loads(r.body)["input"] for r in emulator.requests if "embeddings" in r.path]
    # Batches go out concurrently: their order on the wire varies, the result's does not.
    assert sorted(batches[:3]) == [texts[0:3], texts[3:6], texts[6:8]]
    assert result.usage is not None
    assert result.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles if s.usage)
    assert router.embedding_spaces == {"gigachat/Embeddings": [provider.name]}


async def test_embed_directly(make_provider: Make, emulator) -> None:
    provider = make_provider()
    assert (await provider.embed([])).vectors == []
    space = provider.embedding_space()
    assert space is not None and (space.dimension, space.max_batch) == (1024, 90)
    query = await provider.embed(["найди меня"], kind="query")
    assert query.usage is not None and query.usage.total_tokens == 2
    with pytest.raises(InvalidRequestError, match="strings"):
        await provider.embed([1])  # type: ignore[list-item]

    unknown = make_provider(embedding_model="Embeddings-2")
    assert unknown.embedding_space() is None
    with pytest.raises(ConfigurationError, match="embedding_dimension"):
        await unknown.embed(["x"])
    sized = make_provider(embedding_model="Embeddings-2", embedding_dimension=1024)
    assert (await sized.embed(["x"])).space == "gigachat/Embeddings-2"
    wrong = make_provider(embedding_model="Embeddings-2", embedding_dimension=256)
    with pytest.raises(ProviderError, match="256 numbers"):
        await wrong.embed(["x"])
    missing = make_provider(embedding_model="NoSuchModel", embedding_dimension=8)
    with pytest.raises(ProviderError, match="No such model"):
        await missing.embed(["x"])


async def test_router_embed_fails_over_within_the_space(make_provider: Make, emulator) -> None:
    router = router_with(make_provider(name="one"), make_provider(name="two"))
    emulator.fail_next(503)
    async with router:
        result = await router.embed(["a", "b"])
    assert result.provider == "two" and len(result) == 2


async def test_capabilities() -> None:
    capabilities = GigaChatProvider.capabilities()
    assert capabilities.tools and capabilities.structured_output and capabilities.embeddings
    assert not capabilities.parallel_tool_calls
    assert isinstance(AllProvidersFailedError, type)
