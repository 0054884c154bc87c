"""Tools, structured output and embeddings: the OpenAI provider against its emulator, alone
and through the Router, on asyncio and trio."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterator

import pytest
from pydantic import BaseModel

from orchestrator import Router
from orchestrator.errors import (
    InvalidRequestError,
    InvalidToolCallError,
    ModelNotFoundError,
    ProviderError,
    StructuredOutputError,
)
from orchestrator.testing import LoopbackServer
from orchestrator.tools import Tool
from orchestrator.types import GenerationParams, Message, ToolCall
from orchestrator_openai import OpenAIConfig, OpenAIProvider
from orchestrator_openai.emulator import (
    CallTool,
    CutStream,
    OpenAIEmulator,
    config_for,
    embedding_for,
)
from orchestrator_openai.provider import JSON_MODE_HINT, decode_embedding, strict_compatible

pytestmark = pytest.mark.anyio
Make = Callable[..., OpenAIProvider]


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"18 {unit} in {city}"


def get_time(city: str) -> str:
    """Local time in a city."""
    return f"12:00 in {city}"


WEATHER = Tool.from_function(get_weather)
TIME = Tool.from_function(get_time)
FUNCTIONS = {"get_weather": get_weather, "get_time": get_time}


class City(BaseModel):
    name: str
    population: int
    capital: bool


def run_tool(call: ToolCall) -> Message:
    return Message.tool_result(call, FUNCTIONS[call.name](**call.arguments))


# -- tools -------------------------------------------------------------------------------------


async def test_tool_call_payload_and_answer(make_provider: Make, emulator) -> None:
    provider = make_provider()
    params = GenerationParams(tools=[WEATHER, TIME], tool_choice="get_time")
    completion = await provider.chat([Message("user", "what time is it?")], params)
    assert completion.finish_reason == "tool_calls"
    assert completion.text == ""
    [call] = completion.tool_calls
    assert call.name == "get_time" and call.arguments == {"city": "example"}
    assert call.id.startswith("call_")
    body = emulator.requests[-1].json()
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": dict(WEATHER.parameters),
        },
    }
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert "parallel_tool_calls" not in body
    await provider.aclose()


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
async def test_tool_choice_modes_and_parallel_flag(make_provider: Make, emulator, choice) -> None:
    provider = make_provider()
    params = GenerationParams(tools=[WEATHER], tool_choice=choice, parallel_tool_calls=False)
    completion = await provider.chat([Message("user", "weather?")], params)
    body = emulator.requests[-1].json()
    assert body["tool_choice"] == choice and body["parallel_tool_calls"] is False
    assert bool(completion.tool_calls) == (choice != "none")
    await provider.aclose()


async def test_parallel_calls_and_the_round_trip(make_provider: Make, emulator) -> None:
    provider = make_provider()
    params = GenerationParams(tools=[WEATHER, TIME])
    history = [Message("user", "get_weather and get_time for Paris, please")]
    first = await provider.chat(history, params)
    assert [c.name for c in first.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in first.tool_calls}) == 2
    history += [Message("assistant", first.text, first.tool_calls)]
    history += [run_tool(call) for call in first.tool_calls]
    final = await provider.chat(history, params)
    assert final.finish_reason == "stop" and not final.tool_calls
    assert final.text == (
        "OpenAI emulator: get_weather returned 18 celsius in example; "
        "get_time returned 12:00 in example"
    )
    sent = emulator.requests[-1].json()["messages"]
    assert sent[1]["content"] is None
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == (
        '{"city": "example", "unit": "celsius"}'
    )
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": first.tool_calls[0].id,
        "content": "18 celsius in example",
    }
    await provider.aclose()


async def test_streamed_tool_calls_arrive_whole_on_the_last_chunk(
    make_provider: Make, emulator
) -> None:
    emulator.call_tools_next(
        CallTool("get_weather", {"city": "Санкт-Петербург", "unit": "fahrenheit"}),
        CallTool("get_time", {"city": "Paris"}, id="call_fixed"),
    )
    provider = make_provider()
    params = GenerationParams(tools=[WEATHER, TIME])
    chunks = [c async for c in provider.stream([Message("user", "go")], params)]
    assert all(not c.tool_calls for c in chunks[:-1])
    assert chunks[-1].finish_reason == "tool_calls"
    assert chunks[-1].tool_calls == (
        ToolCall(
            chunks[-1].tool_calls[0].id,
            "get_weather",
            {"city": "Санкт-Петербург", "unit": "fahrenheit"},
        ),
        ToolCall("call_fixed", "get_time", {"city": "Paris"}),
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    await provider.aclose()


async def test_a_cut_tool_call_stream_is_an_error(make_provider: Make, emulator) -> None:
    emulator.cut_next_stream(after_chunks=2)
    provider = make_provider()
    params = GenerationParams(tools=[WEATHER])
    with pytest.raises(ProviderError, match="DONE"):
        async for _ in provider.stream([Message("user", "go")], params):
            pass
    await provider.aclose()


async def test_invalid_arguments_are_a_typed_error_with_the_raw_text(
    make_provider: Make, emulator
) -> None:
    provider = make_provider()
    params = GenerationParams(tools=[WEATHER])
    emulator.call_tools_next(CallTool("get_weather", '{"city": "Par'))
    with pytest.raises(InvalidToolCallError) as caught:
        await provider.chat([Message("user", "go")], params)
    assert caught.value.raw_text == '{"city": "Par'
    assert caught.value.provider == "openai" and caught.value.request_id
    emulator.call_tools_next(CallTool("get_weather", "[1, 2]"))
    with pytest.raises(InvalidToolCallError):
        async for _ in provider.stream([Message("user", "go")], params):
            pass
    await provider.aclose()


def test_a_call_without_a_name_is_refused() -> None:
    provider = OpenAIProvider(OpenAIConfig(api_key="sk-x", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(InvalidToolCallError, match="names no function"):
        provider._tool_calls([{"id": "c", "function": {"arguments": "{}"}}], None)
    with pytest.raises(ProviderError, match="not a list"):
        provider._tool_calls({"id": "c"}, None)
    calls = provider._tool_calls(
        [
            {"id": "f", "function": {"name": "f", "arguments": {"a": 1}}},
            {"id": "f", "function": {"name": "f", "arguments": ""}},
            {"function": {"name": "g", "arguments": None}},
        ],
        None,
    )
    assert [c.id for c in calls][:2] == ["f", "f_2"] and calls[2].id.startswith("call_")
    assert calls[0].arguments == {"a": 1} and calls[1].arguments == {}


@pytest.fixture
def router(make_provider: Make) -> Router:
    router = Router(on_invalid_output="raise")
    router.add_provider(make_provider())
    return router


async def test_tool_round_trip_through_the_router(router: Router) -> None:
    params = GenerationParams(tools=[get_weather])
    history: list[Message] = [Message("user", "weather in Paris?")]
    completion = await router.chat(history, params)
    assert completion.finish_reason == "tool_calls" and completion.provider == "openai"
    history.append(Message("assistant", completion.text, completion.tool_calls))
    history.extend(run_tool(call) for call in completion.tool_calls)
    final = await router.chat(history, params)
    assert final.text == "OpenAI emulator: get_weather returned 18 celsius in example"


async def test_streamed_tool_round_trip_through_the_router(router: Router) -> None:
    params = GenerationParams(tools=[get_weather, get_time])
    history: list[Message] = [Message("user", "get_time in Paris?")]
    chunks = [c async for c in router.chat_stream(history, params)]
    calls = chunks[-1].tool_calls
    assert [c.name for c in calls] == ["get_time"] and chunks[-1].finish_reason == "tool_calls"
    history.append(Message("assistant", "", calls))
    history.extend(run_tool(call) for call in calls)
    text = "".join([c.delta async for c in router.chat_stream(history, params)])
    assert text == "OpenAI emulator: get_time returned 12:00 in example"


async def test_the_router_refuses_arguments_that_break_the_schema(router: Router, emulator) -> None:
    emulator.call_tools_next(CallTool("get_weather", {"town": "Paris"}))
    with pytest.raises(InvalidToolCallError) as caught:
        await router.chat("weather?", GenerationParams(tools=[get_weather]))
    assert "town" in caught.value.raw_text


# -- structured output -------------------------------------------------------------------------


async def test_structured_output_is_parsed_into_the_model(router: Router, emulator) -> None:
    completion = await router.chat("A city, please", GenerationParams(response_format=City))
    assert completion.parsed == City(name="example", population=1, capital=True)
    sent = emulator.requests[-1].json()["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "City"
    assert sent["json_schema"]["strict"] is False  # pydantic's schema is not strict-ready
    chunks = [c async for c in router.chat_stream("A city", GenerationParams(response_format=City))]
    assert chunks[-1].parsed == completion.parsed


async def test_a_schema_violating_answer_raises_with_the_raw_text(router: Router, emulator) -> None:
    emulator.reply_next('{"name": "Paris", "population": "many"}')
    with pytest.raises(StructuredOutputError) as caught:
        await router.chat("A city", GenerationParams(response_format=City))
    assert caught.value.raw_text == '{"name": "Paris", "population": "many"}'
    emulator.reply_next("not json at all")
    with pytest.raises(StructuredOutputError):
        async for _ in router.chat_stream("A city", GenerationParams(response_format=City)):
            pass


async def test_a_strict_ready_schema_is_sent_strict(make_provider: Make, emulator) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    provider = make_provider()
    params = GenerationParams(
        response_format={"type": "json_schema", "json_schema": {"name": "short", "schema": schema}}
    )
    completion = await provider.chat([Message("user", "hi")], params)
    assert completion.text == '{"answer": "example"}'
    assert emulator.requests[-1].json()["response_format"]["json_schema"]["strict"] is True
    forced = make_provider(strict_schemas=True)
    with pytest.raises(InvalidRequestError, match="additionalProperties"):
        await forced.chat([Message("user", "hi")], GenerationParams(response_format=City))
    await provider.aclose()
    await forced.aclose()


async def test_json_mode_mentions_json_when_the_messages_do_not(
    make_provider: Make, emulator
) -> None:
    provider = make_provider()
    params = GenerationParams(response_format="json_object")
    completion = await provider.chat([Message("user", "hi")], params)
    assert completion.text == '{"answer": "OpenAI emulator: hi"}'
    sent = emulator.requests[-1].json()
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0] == {"role": "system", "content": JSON_MODE_HINT}
    await provider.chat([Message("user", "answer in JSON")], params)
    assert len(emulator.requests[-1].json()["messages"]) == 1
    await provider.aclose()


def test_strict_compatible() -> None:
    closed = {"type": "object", "properties": {}, "additionalProperties": False}
    assert strict_compatible(closed)
    assert strict_compatible({"type": "array", "items": closed})
    assert not strict_compatible({"type": "object", "properties": {}})
    assert not strict_compatible({**closed, "properties": {"a": {"type": "string"}}})
    assert not strict_compatible({"anyOf": [{"type": "object", "properties": {}}]})


# -- embeddings --------------------------------------------------------------------------------


def _vectors(texts: list[str], model: str = "text-embedding-3-small", dim: int = 1536):
    return [embedding_for(text, model, dim) for text in texts]


@pytest.mark.parametrize("encoding", ["base64", "float"])
async def test_embed_decodes_both_encodings(make_provider: Make, emulator, encoding) -> None:
    provider = make_provider(embedding_encoding=encoding)
    result = await provider.embed(["один", "two"])
    assert result.vectors == _vectors(["один", "two"])
    assert result.dimension == 1536 and result.model == "text-embedding-3-small"
    assert result.usage is not None and result.usage.total_tokens == 2
    body = emulator.requests[-1].json()
    assert body == {
        "model": "text-embedding-3-small",
        "input": ["один", "two"],
        "encoding_format": encoding,
    }
    assert (await provider.embed([])).vectors == []
    await provider.aclose()


async def test_embed_shortened_vectors_send_dimensions(make_provider: Make, emulator) -> None:
    provider = make_provider(embedding_dimension=256, embedding_model="text-embedding-3-large")
    space = provider.embedding_space()
    assert space.dimension == 256 and space.name.endswith("/text-embedding-3-large@256")
    result = await provider.embed(["x"], kind="query")
    assert len(result.vectors[0]) == 256
    assert result.vectors == [embedding_for("x", "text-embedding-3-large", 256, 3072)]
    assert emulator.requests[-1].json()["dimensions"] == 256
    await provider.aclose()


async def test_embed_errors(make_provider: Make, emulator) -> None:
    provider = make_provider(embedding_model="nomic-embed", embedding_dimension=768)
    with pytest.raises(ModelNotFoundError, match="embedding_model"):
        await provider.embed(["x"])
    await provider.aclose()


def test_decode_embedding() -> None:
    packed = base64.b64encode(struct.pack("<3f", 1.0, -2.5, 0.25)).decode()
    assert decode_embedding(packed) == [1.0, -2.5, 0.25]
    assert decode_embedding([1, 2.5]) == [1.0, 2.5]
    for bad in ("AAA", [True], {"a": 1}, base64.b64encode(b"abc").decode()):
        with pytest.raises(ValueError, match=r"float32|Incorrect|Invalid|list of numbers"):
            decode_embedding(bad)


def test_embedding_spaces() -> None:
    def space(**settings: object) -> str:
        config = OpenAIConfig(api_key="sk-x", **settings)  # type: ignore[arg-type]
        return OpenAIProvider(config).embedding_space().name

    assert space() == "openai/text-embedding-3-small"
    assert (
        space(base_url="http://gpu:8000/v1", embedding_model="bge-m3", embedding_dimension=1024)
        == "gpu:8000/bge-m3"
    )
    assert space(base_url="http://gpu:8000/v1", embedding_space="bge") == "bge"
    yandex = OpenAIConfig.yandex("b1g", "AQVN-key")
    assert OpenAIProvider(yandex).embedding_space().name == "yandexgpt/text-search"
    assert OpenAIProvider(yandex).embedding_space().max_batch == 1
    other = OpenAIConfig.yandex(
        "b1g", "k", embedding_model="emb://b1g/other/latest", embedding_dimension=64
    )
    assert OpenAIProvider(other).embedding_space().name == "yandexgpt/other/latest"
    with pytest.raises(ValueError, match="embedding_dimension"):
        OpenAIConfig(api_key="sk-x", embedding_model="bge-m3")


class _Wrong(OpenAIEmulator):
    """Answers embeddings with one vector too few."""

    async def _embeddings(self, request):  # type: ignore[no-untyped-def]
        from starlette.responses import JSONResponse

        await request.body()
        return JSONResponse({"object": "list", "data": [], "model": "m"})


async def test_embed_refuses_a_short_answer() -> None:
    with LoopbackServer(_Wrong()) as server:
        provider = OpenAIProvider(config_for(server, max_retries=0))
        with pytest.raises(ProviderError, match="0 vectors for 1 texts"):
            await provider.embed(["x"])
        await provider.aclose()


async def test_router_embed_keeps_order_across_batches(make_provider: Make, emulator) -> None:
    router = Router()
    router.add_provider(make_provider(embedding_max_batch=3, embedding_encoding="float"))
    texts = [f"text {i}" for i in range(10)]
    result = await router.embed(texts, concurrency=2)
    assert result.vectors == _vectors(texts)
    assert result.dimension == 1536 and result.space.endswith("/text-embedding-3-small")
    sizes = [len(r.json()["input"]) for r in emulator.requests if r.path == "/v1/embeddings"]
    assert sorted(sizes) == [1, 3, 3, 3]
    assert result.usage is not None and result.usage.total_tokens == 20


# -- the Yandex preset -------------------------------------------------------------------------

YANDEX_MODEL = "gpt://b1g/yandexgpt/latest"
DOC, QUERY = "emb://b1g/text-search-doc/latest", "emb://b1g/text-search-query/latest"


@pytest.fixture(scope="module")
def yandex_server() -> Iterator[tuple[OpenAIEmulator, LoopbackServer]]:
    app = OpenAIEmulator(
        api_key="AQVN-key",
        models=(YANDEX_MODEL,),
        tool_call_style="yandex",
        embedding_models={DOC: 256, QUERY: 256},
    )
    with LoopbackServer(app) as server:
        yield app, server


async def test_yandex_preset_tools_and_embeddings(yandex_server) -> None:
    app, server = yandex_server
    app.reset()
    config = OpenAIConfig.yandex("b1g", "AQVN-key", base_url=f"{server.base_url}/v1", max_retries=0)
    provider = OpenAIProvider(config)
    params = GenerationParams(tools=[WEATHER])
    app.call_tools_next(CallTool("get_weather", {"city": "A"}), CallTool("get_weather"))
    completion = await provider.chat([Message("user", "weather?")], params)
    assert [c.id for c in completion.tool_calls] == ["get_weather", "get_weather_2"]
    history = [Message("user", "weather?"), Message("assistant", "", completion.tool_calls)]
    history += [run_tool(call) for call in completion.tool_calls]
    final = await provider.chat(history, params)
    assert "get_weather returned 18 celsius in A" in final.text
    sent = app.requests[-1].json()["messages"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["get_weather", "get_weather"]
    assert sent[1]["content"] is None
    assert [m["tool_call_id"] for m in sent[2:]] == ["get_weather", "get_weather"]
    assert app.requests[-1].headers["authorization"] == "Api-Key AQVN-key"
    chunks = [c async for c in provider.stream([Message("user", "weather?")], params)]
    assert [c.name for c in chunks[-1].tool_calls] == ["get_weather"]
    assert chunks[-1].tool_calls[0].id == "get_weather"
    for bad in (
        GenerationParams(tools=[WEATHER], tool_choice="required"),
        GenerationParams(tools=[WEATHER], tool_choice="get_weather"),
        GenerationParams(tools=[WEATHER], parallel_tool_calls=False),
    ):
        with pytest.raises(InvalidRequestError, match="Yandex"):
            await provider.chat([Message("user", "x")], bad)
    docs = await provider.embed(["hello"])
    query = await provider.embed(["hello"], kind="query")
    assert docs.vectors == [embedding_for("hello", DOC, 256)]
    assert query.vectors == [embedding_for("hello", QUERY, 256)]
    assert docs.space == query.space == "yandexgpt/text-search"
    assert app.requests[-1].json()["encoding_format"] == "float"
    await provider.aclose()


def test_yandex_preset_embedding_defaults() -> None:
    config = OpenAIConfig.yandex("b1g", "k")
    assert (config.embedding_model, config.embedding_query_model) == (DOC, QUERY)
    assert config.embedding_max_batch == 1 and config.embedding_encoding == "float"


async def test_emulator_stream_fault_on_tool_deltas(make_provider: Make, emulator) -> None:
    emulator.script(CutStream(1))
    provider = make_provider()
    with pytest.raises(ProviderError):
        async for _ in provider.stream([Message("user", "x")], GenerationParams(tools=[WEATHER])):
            pass
    await provider.aclose()
