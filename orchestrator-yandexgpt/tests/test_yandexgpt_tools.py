"""Tools, structured output and embeddings: the provider and the Router against the
emulator over real HTTP, on asyncio and trio."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from orchestrator import Router
from orchestrator.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    InvalidRequestError,
    InvalidToolCallError,
    ModelNotFoundError,
    ProviderError,
    StructuredOutputError,
)
from orchestrator.testing import LoopbackServer
from orchestrator.tools import Tool
from orchestrator.types import GenerationParams, Message, ToolCall
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import TEST_FOLDER_ID, YandexGPTEmulator, config_for

pytestmark = pytest.mark.anyio


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"8°C in {city}"


def get_time(zone: str) -> str:
    """The time in a time zone."""
    return f"12:00 in {zone}"


FUNCTIONS = {"get_weather": get_weather, "get_time": get_time}


class City(BaseModel):
    name: str
    population: int


def router_for(make_provider: Any, **options: Any) -> Router:
    router = Router(**options)
    router.add_provider(make_provider())
    return router


def last_body(emulator: YandexGPTEmulator) -> dict[str, Any]:
    body = emulator.requests[-1]["json"]
    assert isinstance(body, dict)
    return body


# -- tool round trips through the router ------------------------------------------------


async def test_tool_round_trip_through_the_router(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider)
    params = GenerationParams(tools=[get_weather])
    messages: list[Message] = [Message("user", "What is the weather in Paris?")]
    emulator.call_tools_next(("get_weather", {"city": "Paris"}))
    first = await router.chat(messages, params)
    assert first.finish_reason == "tool_calls"
    assert [(c.name, dict(c.arguments)) for c in first.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    sent = last_body(emulator)
    assert sent["tools"] == [
        {
            "function": {
                "name": "get_weather",
                "description": "The current weather in a city.",
                "parameters": Tool.from_function(get_weather).parameters,
            }
        }
    ]
    messages.append(Message("assistant", "", first.tool_calls))
    messages += [Message.tool_result(c, FUNCTIONS[c.name](**c.arguments)) for c in first.tool_calls]
    final = await router.chat(messages, params)
    assert final.finish_reason == "stop"
    assert final.text == "Results: get_weather: 8°C in Paris"
    sent = last_body(emulator)
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "toolCallList": {
                "toolCalls": [
                    {"functionCall": {"name": "get_weather", "arguments": {"city": "Paris"}}}
                ]
            },
        },
        {
            "role": "user",
            "toolResultList": {
                "toolResults": [
                    {"functionResult": {"name": "get_weather", "content": "8°C in Paris"}}
                ]
            },
        },
    ]


async def test_streamed_tool_round_trip_through_the_router(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider)
    params = GenerationParams(tools=[get_weather, get_time])
    messages: list[Message] = [Message("user", "Use get_time, please")]
    chunks = [chunk async for chunk in router.chat_stream(messages, params)]
    assert sum(1 for c in chunks if c.tool_calls) == 1
    last = chunks[-1]
    assert last.finish_reason == "tool_calls"
    assert [c.name for c in last.tool_calls] == ["get_time"]
    assert dict(last.tool_calls[0].arguments) == {"zone": "example"}
    assert last.usage is not None and last.usage.completion_tokens > 0
    messages.append(Message("assistant", "", last.tool_calls))
    messages.append(Message.tool_result(last.tool_calls[0], get_time("UTC")))
    answer = [chunk async for chunk in router.chat_stream(messages, params)]
    assert "".join(c.delta for c in answer) == "Results: get_time: 12:00 in UTC"
    assert answer[-1].finish_reason == "stop"
    assert not any(c.tool_calls for c in answer)


async def test_parallel_calls_and_their_results_in_one_user_message(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider)
    params = GenerationParams(tools=[get_weather, get_time], parallel_tool_calls=True)
    emulator.call_tools_next(
        ("get_weather", {"city": "Moscow"}), {"name": "get_time", "arguments": {"zone": "MSK"}}
    )
    first = await router.chat("Weather and time in Moscow?", params)
    assert [c.name for c in first.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in first.tool_calls}) == 2  # made-up ids, distinct
    assert last_body(emulator)["parallelToolCalls"] is True
    results = [Message.tool_result(c, FUNCTIONS[c.name](**c.arguments)) for c in first.tool_calls]
    history = [
        Message("user", "Weather and time in Moscow?"),
        Message("assistant", "", first.tool_calls),
        *results,
    ]
    final = await router.chat(history, params)
    assert final.text == "Results: get_weather: 8°C in Moscow; get_time: 12:00 in MSK"
    grouped = last_body(emulator)["messages"][2]
    assert grouped["role"] == "user"
    assert [r["functionResult"]["name"] for r in grouped["toolResultList"]["toolResults"]] == [
        "get_weather",
        "get_time",
    ]


async def test_parallel_tool_calls_false_gets_one_call_per_turn(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.call_tools_next(("get_weather", {"city": "A"}), ("get_time", {"zone": "B"}))
    params = GenerationParams(tools=[get_weather, get_time], parallel_tool_calls=False)
    completion = await provider.chat([Message("user", "both")], params)
    assert [c.name for c in completion.tool_calls] == ["get_weather"]
    assert last_body(emulator)["parallelToolCalls"] is False


@pytest.mark.parametrize(
    ("choice", "wire", "called"),
    [
        ("auto", {"mode": "AUTO"}, ["get_weather"]),
        ("required", {"mode": "REQUIRED"}, ["get_weather"]),
        ("none", {"mode": "NONE"}, []),
        ("get_time", {"functionName": "get_time"}, ["get_time"]),
    ],
)
async def test_tool_choice_on_the_wire(
    provider: YandexGPTProvider,
    emulator: YandexGPTEmulator,
    choice: str,
    wire: dict[str, str],
    called: list[str],
) -> None:
    params = GenerationParams(tools=[get_weather, get_time], tool_choice=choice)
    completion = await provider.chat([Message("user", "hello")], params)
    assert last_body(emulator)["toolChoice"] == wire
    assert [c.name for c in completion.tool_calls] == called
    assert completion.finish_reason == ("tool_calls" if called else "stop")


async def test_no_tool_fields_without_tools(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    await provider.chat([Message("user", "hello")], GenerationParams())
    body = last_body(emulator)
    for field in ("tools", "toolChoice", "parallelToolCalls", "jsonObject", "jsonSchema"):
        assert field not in body


async def test_invalid_arguments_fail_the_answer(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider, on_invalid_output="raise")
    emulator.invalid_arguments_next()
    with pytest.raises(InvalidToolCallError, match="do not match its parameters") as caught:
        await router.chat("weather?", GenerationParams(tools=[get_weather]))
    assert json.loads(caught.value.raw_text) == {}  # the required city left out


async def test_a_call_of_an_unknown_tool_fails_over(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider)
    emulator.call_tools_next(("delete_everything", {}))
    with pytest.raises(AllProvidersFailedError) as caught:
        await router.chat("weather?", GenerationParams(tools=[get_weather]))
    assert isinstance(caught.value.exceptions[0], InvalidToolCallError)


async def test_garbled_arguments_are_an_invalid_tool_call(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.call_tools_next(("get_weather", "{not json"))
    with pytest.raises(InvalidToolCallError) as caught:
        await provider.chat([Message("user", "x")], GenerationParams(tools=[get_weather]))
    assert caught.value.raw_text == "{not json"


async def test_assistant_text_beside_tool_calls_goes_before_them(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Oslo"})
    messages = [
        Message("user", "weather?"),
        Message("assistant", "Let me check.", (call,)),
        Message.tool_result(call, {"celsius": 3}),
    ]
    await provider.chat(messages, GenerationParams(tools=[get_weather]))
    sent = last_body(emulator)["messages"]
    assert sent[1] == {"role": "assistant", "text": "Let me check."}
    assert "toolCallList" in sent[2]
    assert sent[3]["toolResultList"]["toolResults"][0]["functionResult"]["content"] == (
        '{"celsius": 3}'
    )


# -- structured output ------------------------------------------------------------------------


async def test_structured_output_returns_a_validated_model(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider)
    completion = await router.chat("Describe a city", GenerationParams(response_format=City))
    assert completion.parsed == City(name="example", population=1)
    schema = {k: v for k, v in City.model_json_schema().items() if k != "title"}
    assert last_body(emulator)["jsonSchema"] == {"schema": schema}


async def test_streamed_structured_output_is_parsed_on_the_last_chunk(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider)
    emulator.reply_next('{"name": "Kazan", "population": 1300000}')
    chunks = [c async for c in router.chat_stream("city", GenerationParams(response_format=City))]
    assert len(chunks) > 1
    assert chunks[-1].parsed == City(name="Kazan", population=1300000)


async def test_json_object_mode(provider: YandexGPTProvider, emulator: YandexGPTEmulator) -> None:
    params = GenerationParams(response_format="json_object")
    completion = await provider.chat([Message("user", "ping")], params)
    assert last_body(emulator)["jsonObject"] is True
    assert "jsonSchema" not in last_body(emulator)
    assert json.loads(completion.text) == {"answer": "Echo: ping"}


async def test_a_schema_violating_answer_is_a_structured_output_error(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider, on_invalid_output="raise")
    emulator.violate_schema_next()
    with pytest.raises(StructuredOutputError, match="does not match City") as caught:
        await router.chat("city", GenerationParams(response_format=City))
    assert json.loads(caught.value.raw_text) == {"population": 1}


async def test_a_non_json_answer_is_a_structured_output_error(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider, on_invalid_output="raise")
    emulator.violate_schema_next()
    with pytest.raises(StructuredOutputError, match="not JSON") as caught:
        await router.chat("city", GenerationParams(response_format="json_object"))
    assert caught.value.raw_text == "This is not JSON."


# -- embeddings -------------------------------------------------------------------------------


async def test_router_embed_keeps_order_across_single_text_batches(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    router = router_for(make_provider)
    texts = [f"document number {i}" for i in range(7)]
    result = await router.embed(texts)
    assert emulator.request_count == 7  # max_batch=1: one request per text
    assert result.dimension == 256 and result.space == "yandexgpt/text-search"
    assert all(len(v) == 256 for v in result.vectors)
    async with make_provider() as provider:
        for text, vector in zip(texts, result.vectors, strict=True):
            alone = await provider.embed([text])
            assert list(alone.vectors[0]) == list(vector)
    assert result.usage is not None and result.usage.prompt_tokens == 21
    assert result.cost is not None and result.cost > 0
    assert {r["json"]["modelUri"] for r in emulator.requests} == {
        f"emb://{TEST_FOLDER_ID}/text-search-doc/latest"
    }


async def test_query_kind_uses_the_query_model(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    query = await provider.embed(["what is it"], kind="query")
    document = await provider.embed("what is it")  # a single string is one text
    assert query.model == "text-search-query" and document.model == "text-search-doc"
    assert [r["json"]["modelUri"].split("/")[3] for r in emulator.requests] == [
        "text-search-query",
        "text-search-doc",
    ]
    assert list(query.vectors[0]) != list(document.vectors[0])
    with pytest.raises(ValueError, match="'document' or 'query'"):
        await provider.embed(["x"], kind="doc")  # type: ignore[arg-type]


async def test_custom_embedding_models_make_their_own_space(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    uri = f"emb://{TEST_FOLDER_ID}/text-search-doc/rc"
    async with make_provider(embedding_doc_model=uri, embedding_query_model="query") as provider:
        space = provider.embedding_space()
        assert space.name == f"yandexgpt/{uri}|text-search-query"
        result = await provider.embed(["x"])
        assert result.model == uri and result.space == space.name
        await provider.embed(["x"], kind="query")
    assert [r["json"]["modelUri"] for r in emulator.requests] == [
        uri,
        f"emb://{TEST_FOLDER_ID}/text-search-query/latest",
    ]


def test_a_bad_embedding_model_name_fails_at_construction(server: LoopbackServer) -> None:
    with pytest.raises(ConfigurationError, match="embedding model"):
        YandexGPTProvider(config_for(server, embedding_doc_model="not a model!"), environ={})


async def test_a_bad_model_uri_is_an_invalid_request_naming_the_setting(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(embedding_doc_model="emb://x/nonsense") as provider:
        with pytest.raises(InvalidRequestError, match="embedding_doc_model") as caught:
            await provider.embed(["x"])
    assert caught.value.status_code == 400
    assert not isinstance(caught.value, ModelNotFoundError)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"embedding": ["0.5"] * 256, "numTokens": "4"}, None),
        ({"embedding": [0.5] * 256}, None),
        ({"embedding": [0.5] * 255, "numTokens": "1"}, "255 numbers, not 256"),
        ({"embedding": ["x"] * 256}, "without an embedding list"),
        ({"embedding": [True] * 256}, "without an embedding list"),
        ({"embedding": []}, "without an embedding list"),
        ({"vector": [1.0]}, "without an embedding list"),
    ],
)
async def test_embedding_answers_are_read_or_refused(
    answer: dict[str, Any], message: str | None
) -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    config = config_for(_FakeServer(), max_retries=0)
    async with YandexGPTProvider(
        config, transport=httpx.MockTransport(handler), environ={}
    ) as provider:
        if message is None:
            result = await provider.embed(["x"])
            assert result.vectors[0][0] == 0.5
            expected = 4 if "numTokens" in answer else None
            assert (result.usage and result.usage.prompt_tokens) == expected
        else:
            with pytest.raises(ProviderError, match=message):
                await provider.embed(["x"])


class _FakeServer:
    """Enough of a LoopbackServer for config_for() (a mock transport answers)."""

    app = YandexGPTEmulator()
    base_url = "http://emulated.invalid"
    ca_file = None


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "toolCallList": []},
        {"role": "assistant", "toolCallList": {"toolCalls": "x"}},
        {"role": "assistant", "toolCallList": {"toolCalls": [{"functionCall": {}}]}},
        {"role": "assistant", "toolCallList": {"toolCalls": [None]}},
    ],
)
async def test_a_tool_call_list_of_the_wrong_shape_is_a_provider_error(
    make_provider: Any, emulator: YandexGPTEmulator, message: dict[str, Any]
) -> None:
    alternative = {"message": message, "status": "ALTERNATIVE_STATUS_TOOL_CALLS"}
    emulator.wrong_shape_next({"result": {"alternatives": [alternative]}})
    async with make_provider(max_retries=0) as provider:
        with pytest.raises(ProviderError, match="toolCallList") as caught:
            await provider.chat([Message("user", "x")], GenerationParams(tools=[get_weather]))
    assert caught.value.transient


async def test_other_bad_requests_pass_through_unchanged(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.fail_next(400, message="text is too long")
    with pytest.raises(InvalidRequestError, match="text is too long") as caught:
        await provider.embed(["x"])
    assert "embedding_doc_model" not in caught.value.message


def test_infinite_or_odd_vector_items_are_refused() -> None:
    from orchestrator_yandexgpt.provider import _vector

    assert _vector(["inf", 1.0]) is None
    assert _vector([None]) is None
    assert _vector(["1e-3", 2]) == [0.001, 2.0]
