"""Fidelity check: the official ``openai`` client, pointed at the emulator, works unchanged.

The client is a test-only dependency (extra ``test`` of this package); without it the test
is skipped. Its retries are real: ``max_retries`` and the ``Retry-After`` family are the
client's own logic, and the emulator counts the requests it received.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator

import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_openai.emulator import CallTool, OpenAIEmulator, answer_for, embedding_for

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    # asyncio only: under trio the client's own stream leaves its event generator to the
    # garbage collector (AsyncStream._iter_events), which trio reports; that is the client's
    # business, not the emulator's. Our provider runs on both (test_openai_contract.py).
    return "asyncio"


@pytest.fixture(params=[False, True], ids=["http", "https"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[OpenAIEmulator, object]]:
    app = OpenAIEmulator()
    with LoopbackServer(app, tls=request.param) as server:
        options = {}
        if server.tls:
            # The client's own HTTP stack, told to trust the emulator's throwaway CA.
            import httpx2  # type: ignore[import-not-found]

            context = ssl.create_default_context(cafile=server.ca_file)
            options["http_client"] = httpx2.AsyncClient(verify=context)
        client = openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=app.api_key, max_retries=2, **options
        )
        async with client:
            yield app, client


async def test_chat(served) -> None:
    app, client = served
    reply = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": "Привет!"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert reply.choices[0].message.content == answer_for([{"role": "user", "content": "Привет!"}])
    assert reply.choices[0].finish_reason == "stop"
    assert reply.object == "chat.completion"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply._request_id is not None and reply._request_id.startswith("req_")
    sent = app.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {app.api_key}"
    assert sent.json()["max_tokens"] == 50


async def test_max_tokens_cuts_with_length(served) -> None:
    _, client = served
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "OpenAI emulator"


async def test_stream_with_include_usage(served) -> None:
    _, client = served
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "OpenAI emulator: stream me"
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_usage_has_no_usage_chunk(served) -> None:
    _, client = served
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_mid_stream_error_event_raises_api_error(served) -> None:
    from orchestrator_openai.emulator import ErrorEvent

    app, client = served
    app.script(ErrorEvent(after_chunks=1, message="model crashed"))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    with pytest.raises(openai.APIError, match="model crashed"):
        async for _ in stream:
            pass


async def test_rate_limit_is_retried_after_the_servers_delay(served) -> None:
    app, client = served
    app.fail_next(429, retry_after_ms=10)
    app.fail_next(429, retry_after=0.01)
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content == "OpenAI emulator: x"
    assert app.request_count == 3
    retries = [r.headers.get("x-stainless-retry-count") for r in app.requests]
    assert retries == ["0", "1", "2"]


async def test_rate_limit_error_class_once_retries_run_out(served) -> None:
    app, client = served
    app.fail_next(429, times=3, retry_after=0.01, message="Rate limit reached for requests")
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in info.value.message
    assert info.value.request_id is not None
    assert app.request_count == 3  # the first call and max_retries=2


async def test_x_should_retry_false_stops_retries(served) -> None:
    app, client = served
    app.fail_next(500, should_retry=False)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert app.request_count == 1


async def test_long_retry_after_is_not_waited_for(served) -> None:
    app, client = served
    app.fail_next(429, retry_after=600)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert app.request_count == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "BadRequestError"),
        (401, "AuthenticationError"),
        (403, "PermissionDeniedError"),
        (404, "NotFoundError"),
        (422, "UnprocessableEntityError"),
        (500, "InternalServerError"),
        (503, "InternalServerError"),
    ],
)
async def test_error_classes(served, status: int, error: str) -> None:
    app, client = served
    app.fail_next(status)
    with pytest.raises(getattr(openai, error)) as info:
        await client.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body["message"]


async def test_wrong_key_unknown_model_and_bad_request_unscripted(served) -> None:
    _app, client = served
    with pytest.raises(openai.AuthenticationError) as auth:
        await client.with_options(api_key="sk-wrong-key-000000").models.list()
    assert auth.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(
            model="gpt-9-imaginary", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            stream_options={"include_usage": True},
        )
    with pytest.raises(openai.BadRequestError, match="too short"):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])


async def test_models(served) -> None:
    app, client = served
    ids = [model.id async for model in client.models.list()]
    assert ids == list(app.models)
    model = await client.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "openai")
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")


async def test_api_key_scheme_and_project_header(served) -> None:
    app, client = served
    yandex_style = client.with_options(default_headers={"OpenAI-Project": "b1g-folder"})
    await yandex_style.models.list()
    assert app.requests[-1].headers["openai-project"] == "b1g-folder"


# -- tools, structured output, embeddings ------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


async def test_tool_call_and_result(served) -> None:
    _app, client = served
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "example"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C"})
    final = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "OpenAI emulator: get_weather returned 18C"
    with pytest.raises(openai.BadRequestError, match="tool_call_ids did not have response"):
        await client.chat.completions.create(model="gpt-4o-mini", messages=messages[:2])


async def test_streamed_tool_call_deltas_are_split_and_the_sdk_joins_them(served) -> None:
    app, client = served
    app.call_tools_next(
        CallTool("get_weather", {"city": "Нижний Новгород"}), CallTool("get_weather")
    )
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices]
    fragments = [d for ds in deltas if ds for d in ds if d.function and d.function.arguments]
    assert len(fragments) > 4  # the arguments really come in pieces
    assert any(len(ds) > 1 for ds in deltas if ds)  # several fragments in one chunk
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The SDK's own accumulator rebuilds the calls.
    app.call_tools_next(
        CallTool("get_weather", {"city": "Нижний Новгород"}), CallTool("get_weather")
    )
    async with client.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather"}], tools=[WEATHER_TOOL]
    ) as events:
        completion = await events.get_final_completion()
    calls = completion.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Нижний Новгород"},
        {"city": "example"},
    ]
    assert [c.function.parsed_arguments for c in calls] == [
        {"city": "Нижний Новгород"},
        {"city": "example"},
    ]


async def test_parse_with_a_pydantic_model_and_a_pydantic_tool(served) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    class Lookup(BaseModel):
        city: str

    app, client = served
    completion = await client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "A city"}],
        response_format=City,
    )
    assert completion.choices[0].message.parsed == City(name="example", population=1)
    sent = app.requests[-1].json()["response_format"]
    assert sent["json_schema"]["strict"] is True and sent["json_schema"]["name"] == "City"
    completion = await client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Lookup Paris"}],
        tools=[openai.pydantic_function_tool(Lookup)],
    )
    [call] = completion.choices[0].message.tool_calls
    assert call.function.parsed_arguments == Lookup(city="example")
    app.reply_next('{"name": "Paris"}')  # a schema-violating answer
    with pytest.raises(ValueError, match="population"):
        await client.chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "A city"}],
            response_format=City,
        )
    with pytest.raises(openai.BadRequestError, match="word 'json'"):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
        )


async def test_embeddings_base64_by_default_and_float(served) -> None:
    app, client = served
    texts = ["hello", "мир"]
    by_default = await client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert app.requests[-1].json()["encoding_format"] == "base64"  # the SDK asks for it
    assert [e.embedding for e in by_default.data] == [
        embedding_for(t, "text-embedding-3-small", 1536) for t in texts
    ]
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float", dimensions=64
    )
    assert len(floats.data[0].embedding) == 64
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 1
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        await client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=64)
    with pytest.raises(openai.BadRequestError, match="empty string"):
        await client.embeddings.create(model="text-embedding-3-small", input=[""])
    with pytest.raises(openai.NotFoundError):
        await client.embeddings.create(model="nope", input="x")
