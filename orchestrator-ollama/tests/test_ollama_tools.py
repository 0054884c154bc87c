"""Tools, structured output and embeddings: the Ollama provider against its emulator, alone
and through the Router, on asyncio and trio."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel

from orchestrator import Router
from orchestrator.errors import (
    InvalidRequestError,
    InvalidToolCallError,
    ModelNotFoundError,
    ProviderError,
    StructuredOutputError,
    UnsupportedCapabilityError,
)
from orchestrator.testing import LoopbackServer
from orchestrator.types import GenerationParams, Message, ToolCall
from orchestrator_ollama import OllamaConfig, OllamaProvider
from orchestrator_ollama.emulator import CallTool, OllamaEmulator, config_for, embedding_for

pytestmark = pytest.mark.anyio
Make = Callable[..., OllamaProvider]


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"18 {unit} in {city}"


def get_time(city: str) -> str:
    """Local time in a city."""
    return f"12:00 in {city}"


FUNCTIONS = {"get_weather": get_weather, "get_time": get_time}


class Pet(BaseModel):
    name: str
    age: int


def run_tool(call: ToolCall) -> Message:
    return Message.tool_result(call, FUNCTIONS[call.name](**call.arguments))


async def test_tool_calls_payload_and_history(make_provider: Make, emulator) -> None:
    provider = make_provider()
    params = GenerationParams(tools=[get_weather, get_time], tool_choice="auto")
    history = [Message("user", "get_weather and get_time, please")]
    first = await provider.chat(history, params)
    assert first.finish_reason == "tool_calls"
    assert [(c.name, dict(c.arguments)) for c in first.tool_calls] == [
        ("get_weather", {"city": "example", "unit": "celsius"}),
        ("get_time", {"city": "example"}),
    ]
    assert len({c.id for c in first.tool_calls}) == 2
    body = emulator.requests[-1].json()
    assert body["tools"][1]["function"]["name"] == "get_time"
    assert body["tools"][1]["type"] == "function"
    history += [Message("assistant", "", first.tool_calls)]
    history += [run_tool(call) for call in first.tool_calls]
    final = await provider.chat(history, params)
    assert final.text == (
        "Ollama emulator: get_weather returned 18 celsius in example; "
        "get_time returned 12:00 in example"
    )
    sent = emulator.requests[-1].json()["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "index": 0,
        "name": "get_weather",
        "arguments": {"city": "example", "unit": "celsius"},
    }
    assert sent[2]["tool_name"] == "get_weather"
    assert sent[2]["tool_call_id"] == first.tool_calls[0].id
    none = await provider.chat(history[:1], GenerationParams(tools=[get_time], tool_choice="none"))
    assert "tools" not in emulator.requests[-1].json() and not none.tool_calls
    await provider.aclose()


async def test_streamed_tool_calls_on_the_last_chunk(make_provider: Make, emulator) -> None:
    emulator.call_tools_next(CallTool("get_time", {"city": "Омск"}), CallTool("get_time"))
    provider = make_provider()
    chunks = [
        c async for c in provider.stream([Message("user", "x")], GenerationParams(tools=[get_time]))
    ]
    assert all(not c.tool_calls for c in chunks[:-1])
    assert chunks[-1].finish_reason == "tool_calls"
    assert [dict(c.arguments) for c in chunks[-1].tool_calls] == [
        {"city": "Омск"},
        {"city": "example"},
    ]
    await provider.aclose()


@pytest.mark.parametrize(
    "params",
    [
        GenerationParams(tools=[get_time], tool_choice="required"),
        GenerationParams(tools=[get_time], tool_choice="get_time"),
        GenerationParams(tools=[get_time], parallel_tool_calls=False),
    ],
)
async def test_what_ollama_cannot_do_is_refused_before_any_call(
    make_provider: Make, emulator, params
) -> None:
    provider = make_provider()
    with pytest.raises(InvalidRequestError, match="Ollama"):
        await provider.chat([Message("user", "x")], params)
    assert emulator.request_count == 0
    router = Router()
    router.add_provider(provider)
    with pytest.raises(Exception, match="Ollama") as caught:
        await router.chat("x", params)
    assert not isinstance(caught.value, UnsupportedCapabilityError)
    await provider.aclose()


async def test_invalid_arguments_are_a_typed_error(make_provider: Make, emulator) -> None:
    provider = make_provider()
    emulator.call_tools_next(CallTool("get_time", "{not json"))
    with pytest.raises(InvalidToolCallError) as caught:
        await provider.chat([Message("user", "x")], GenerationParams(tools=[get_time]))
    assert caught.value.raw_text == "{not json" and caught.value.provider == "ollama"
    emulator.call_tools_next(CallTool("get_time", "[]"))
    with pytest.raises(InvalidToolCallError):
        async for _ in provider.stream([Message("user", "x")], GenerationParams(tools=[get_time])):
            pass
    await provider.aclose()


async def test_round_trips_through_the_router(make_provider: Make, emulator) -> None:
    router = Router(on_invalid_output="raise")
    router.add_provider(make_provider())
    params = GenerationParams(tools=[get_weather])
    history: list[Message] = [Message("user", "weather?")]
    completion = await router.chat(history, params)
    history += [Message("assistant", "", completion.tool_calls)]
    history += [run_tool(call) for call in completion.tool_calls]
    final = await router.chat(history, params)
    assert final.text == "Ollama emulator: get_weather returned 18 celsius in example"
    chunks = [c async for c in router.chat_stream(history[:1], params)]
    assert [c.name for c in chunks[-1].tool_calls] == ["get_weather"]
    streamed = "".join([c.delta async for c in router.chat_stream(history, params)])
    assert streamed == final.text
    emulator.call_tools_next(CallTool("get_weather", {"city": 5}))
    with pytest.raises(InvalidToolCallError):
        await router.chat("weather?", params)


async def test_structured_output(make_provider: Make, emulator) -> None:
    router = Router(on_invalid_output="raise")
    router.add_provider(make_provider())
    completion = await router.chat("a pet", GenerationParams(response_format=Pet))
    assert completion.parsed == Pet(name="example", age=1)
    sent = emulator.requests[-1].json()["format"]
    assert sent["properties"] == Pet.model_json_schema()["properties"]
    assert sent["required"] == ["name", "age"]
    chunks = [c async for c in router.chat_stream("a pet", GenerationParams(response_format=Pet))]
    assert chunks[-1].parsed == Pet(name="example", age=1)
    any_json = await router.chat("hi", GenerationParams(response_format="json_object"))
    assert any_json.parsed == {"answer": "Ollama emulator: hi"}
    assert emulator.requests[-1].json()["format"] == "json"
    emulator.reply_next('{"name": "Rex", "age": "old"}')
    with pytest.raises(StructuredOutputError) as caught:
        await router.chat("a pet", GenerationParams(response_format=Pet))
    assert caught.value.raw_text == '{"name": "Rex", "age": "old"}'


async def test_embed(make_provider: Make, emulator) -> None:
    provider = make_provider()
    space = provider.embedding_space()
    assert (space.name, space.dimension, space.max_batch) == (
        "ollama/nomic-embed-text:latest",
        768,
        256,
    )
    result = await provider.embed(["a", "b"], kind="query")
    assert result.vectors == [embedding_for(t, "nomic-embed-text", 768) for t in "ab"]
    assert result.usage is not None and result.usage.total_tokens == 2
    assert emulator.requests[-1].json() == {"model": "nomic-embed-text", "input": ["a", "b"]}
    assert (await provider.embed([])).vectors == []
    short = make_provider(embedding_dimension=32, keep_alive="1m")
    assert short.embedding_space().name == "ollama/nomic-embed-text:latest@32"
    assert len((await short.embed(["a"])).vectors[0]) == 32
    assert emulator.requests[-1].json()["dimensions"] == 32
    assert emulator.requests[-1].json()["keep_alive"] == "1m"
    missing = make_provider(embedding_model="bge-m3")
    with pytest.raises(ModelNotFoundError, match="ollama pull"):
        await missing.embed(["a"])
    not_embedding = make_provider(embedding_model="llama3.2", embedding_dimension=8)
    with pytest.raises(ProviderError, match="does not support embeddings"):
        await not_embedding.embed(["a"])
    for p in (provider, short, missing, not_embedding):
        await p.aclose()


def test_embedding_config() -> None:
    with pytest.raises(ValueError, match="embedding_dimension"):
        OllamaConfig(embedding_model="my-embedder")
    config = OllamaConfig(
        embedding_model="my-embedder", embedding_dimension=10, embedding_space="x"
    )
    assert OllamaProvider(config).embedding_space().name == "x"


class _Short(OllamaEmulator):
    async def _embed(self, request):  # type: ignore[no-untyped-def]
        from starlette.responses import JSONResponse

        await request.body()
        return JSONResponse({"model": "m", "embeddings": [[1.0]]})


async def test_embed_refuses_a_wrong_answer() -> None:
    with LoopbackServer(_Short()) as server:
        provider = OllamaProvider(config_for(server, max_retries=0))
        with pytest.raises(ProviderError, match="list of 2 vectors"):
            await provider.embed(["a", "b"])
        await provider.aclose()


async def test_router_embed_order_and_batches(make_provider: Make, emulator) -> None:
    router = Router()
    router.add_provider(make_provider(embedding_max_batch=4))
    texts = [f"text number {i}" for i in range(11)]
    result = await router.embed(texts)
    assert result.vectors == [embedding_for(t, "nomic-embed-text", 768) for t in texts]
    assert result.dimension == 768 and result.space == "ollama/nomic-embed-text:latest"
    sizes = [len(r.json()["input"]) for r in emulator.requests if r.path == "/api/embed"]
    assert sorted(sizes) == [3, 4, 4]
