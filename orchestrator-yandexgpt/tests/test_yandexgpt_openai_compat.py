"""The official ``openai`` client, unchanged, against the emulator's Yandex-flavoured
OpenAI-compatible ``/v1`` (spec section 8): chat, streaming, tools, structured output,
embeddings (``encoding_format="float"``), models, errors — on asyncio and trio."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from orchestrator.testing import LoopbackServer
from orchestrator_yandexgpt.emulator import (
    TEST_API_KEY,
    TEST_FOLDER_ID,
    TEST_IAM_TOKEN,
    YandexGPTEmulator,
)

pytestmark = pytest.mark.anyio

#: Streams on asyncio only: under trio the client's own AsyncStream leaves its event
#: generator (``_iter_events``) to the garbage collector, which trio reports; that is the
#: client's business, not the emulator's (orchestrator-openai's fidelity tests do the same).
#: Everything else runs on both backends.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

MODEL = f"gpt://{TEST_FOLDER_ID}/yandexgpt/latest"
EMB = f"emb://{TEST_FOLDER_ID}/text-search-doc/latest"
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
async def client(server: LoopbackServer, emulator: YandexGPTEmulator) -> AsyncIterator[AsyncOpenAI]:
    # What Yandex's docs show: the API key as a Bearer token, the folder as the project.
    made = AsyncOpenAI(
        api_key=TEST_API_KEY,
        base_url=f"{server.base_url}/v1",
        project=TEST_FOLDER_ID,
        max_retries=0,
    )
    async with made:
        yield made


async def test_chat(client: AsyncOpenAI, emulator: YandexGPTEmulator) -> None:
    completion = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}], max_tokens=50
    )
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage is not None and completion.usage.total_tokens == 5
    sent = emulator.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {TEST_API_KEY}"
    assert sent["headers"]["openai-project"] == TEST_FOLDER_ID


@asyncio_only
async def test_stream_is_text_deltas_then_done(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: one two three"
    assert [c.choices[0].finish_reason for c in chunks] == [None] * 3 + ["stop"]
    assert chunks[0].choices[0].delta.role == "assistant"


@asyncio_only
async def test_stream_with_usage_when_asked(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


async def test_tool_round_trip(client: AsyncOpenAI, emulator: YandexGPTEmulator) -> None:
    emulator.call_tools_next(("weather", {"city": "Saint Petersburg"}))
    messages: list[Any] = [{"role": "user", "content": "Weather in Saint Petersburg?"}]
    first = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == ""
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id == "weather"  # Yandex: the call id is the function name
    assert call.type == "function"
    assert json.loads(call.function.arguments) == {"city": "Saint Petersburg"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "+20.0"})
    final = await client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Results: weather: +20.0"


@asyncio_only
async def test_streamed_tool_call_arrives_whole_in_one_chunk(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 1
    choice = chunks[0].choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.delta.tool_calls is not None
    call = choice.delta.tool_calls[0]
    assert (call.index, call.id) == (0, "weather")
    assert call.function is not None and json.loads(call.function.arguments or "") == {
        "city": "example"
    }


async def test_tool_choice_none_answers_text(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        tools=[WEATHER],
        tool_choice="none",
    )
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "Echo: hi"


@pytest.mark.parametrize("shape", ["nested", "bare"])
async def test_structured_output(client: AsyncOpenAI, shape: str) -> None:
    schema = {
        "type": "object",
        "properties": {"numbers": {"type": "array", "items": {"type": "integer"}}},
        "required": ["numbers"],
    }
    # The SDK's shape (schema under json_schema.schema) and the docs' (the bare schema).
    spec: dict[str, Any] = {"name": "foo", "schema": schema} if shape == "nested" else schema
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "numbers"}],
        response_format={"type": "json_schema", "json_schema": spec},  # type: ignore[typeddict-item]
    )
    assert json.loads(completion.choices[0].message.content or "") == {"numbers": [1]}


async def test_embeddings_in_float(client: AsyncOpenAI) -> None:
    result = await client.embeddings.create(model=EMB, input="hello", encoding_format="float")
    assert len(result.data) == 1 and len(result.data[0].embedding) == 256
    assert result.model == EMB
    assert result.usage.prompt_tokens == 1
    again = await client.embeddings.create(model=EMB, input=["hello"], encoding_format="float")
    assert again.data[0].embedding == result.data[0].embedding


async def test_embeddings_refuse_base64_and_batches(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="encoding_format"):
        await client.embeddings.create(model=EMB, input="hello", encoding_format="base64")
    with pytest.raises(openai.BadRequestError, match="one text per request"):
        await client.embeddings.create(model=EMB, input=["a", "b"], encoding_format="float")
    with pytest.raises(openai.BadRequestError, match="emb://"):
        await client.embeddings.create(model=MODEL, input="a", encoding_format="float")


async def test_models_are_uris(client: AsyncOpenAI) -> None:
    ids = [model.id async for model in client.models.list()]
    assert MODEL in ids and EMB in ids
    assert all(i.startswith(("gpt://", "emb://")) for i in ids)


async def test_errors_map_to_the_sdk_classes(
    client: AsyncOpenAI, server: LoopbackServer, emulator: YandexGPTEmulator
) -> None:
    with pytest.raises(openai.BadRequestError, match="model URI"):
        await client.chat.completions.create(
            model="yandexgpt-lite", messages=[{"role": "user", "content": "x"}]
        )
    emulator.fail_next(429, retry_after=0.01)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}]
        )
    async with AsyncOpenAI(
        api_key="wrong", base_url=f"{server.base_url}/v1", max_retries=0
    ) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()
    async with AsyncOpenAI(
        api_key=TEST_API_KEY, base_url=f"{server.base_url}/v1", project="b1gother", max_retries=0
    ) as other:
        with pytest.raises(openai.PermissionDeniedError, match="b1gother"):
            await other.models.list()


async def test_the_sdk_retries_a_503(client: AsyncOpenAI, emulator: YandexGPTEmulator) -> None:
    emulator.fail_next(503, retry_after=0)
    retrying = client.with_options(max_retries=1)
    completion = await retrying.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "again"}]
    )
    assert completion.choices[0].message.content == "Echo: again"
    assert emulator.request_count == 2


async def test_api_key_scheme_and_iam_tokens(server: LoopbackServer) -> None:
    # Yandex's own SDK: "Api-Key <key>" or "Bearer <IAM token>", folder in the model URI.
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient(base_url=f"{server.base_url}/v1") as http:
        for header in (f"Api-Key {TEST_API_KEY}", f"Bearer {TEST_IAM_TOKEN}"):
            response = await http.post(
                "/chat/completions", json=body, headers={"Authorization": header}
            )
            assert response.status_code == 200, response.text
            assert response.json()["id"].count("-") == 4  # a bare UUID, no "chatcmpl-"
        response = await http.post("/chat/completions", json=body)
        assert response.status_code == 401
        assert "message" in response.json()["error"]
