"""The contract kit's FakeOpenAIServer speaks tools, structured output and embeddings the way
the official ``openai`` client expects (the client is the yardstick, not our provider)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from pydantic import BaseModel

from orchestrator.testing import FakeOpenAIServer, LoopbackServer, ScriptableModel

KEY = "sk-fake-fidelity-0123456789"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def app() -> FakeOpenAIServer:
    return FakeOpenAIServer(api_key=KEY, embedding_dimension=16)


@pytest.fixture
def client(app: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    with LoopbackServer(app) as server:
        yield openai.OpenAI(api_key=KEY, base_url=f"{server.base_url}/v1", max_retries=0)


def test_is_a_scriptable_model(app: FakeOpenAIServer) -> None:
    assert isinstance(app, ScriptableModel)
    with pytest.raises(ValueError, match="at least one call"):
        app.call_tools_next()
    with pytest.raises(ValueError, match="times"):
        app.reply_next("x", times=0)


def test_tool_calls_plain_and_streamed(app: FakeOpenAIServer, client: openai.OpenAI) -> None:
    app.call_tools_next(("get_weather", {"city": "Москва"}), ("get_weather", {"city": "Kazan"}))
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather?"}]
    answer = client.chat.completions.create(
        model="fake-model",
        messages=messages,
        tools=[WEATHER],  # type: ignore[arg-type,list-item]
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls]  # type: ignore[union-attr]
    assert calls == [("get_weather", {"city": "Москва"}), ("get_weather", {"city": "Kazan"})]

    app.call_tools_next(("get_weather", {"city": "Нижний Новгород"}))
    with client.chat.completions.stream(
        model="fake-model",
        messages=messages,
        tools=[WEATHER],  # type: ignore[arg-type,list-item]
    ) as stream:
        deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 1  # the arguments really arrive in fragments
    streamed = final.choices[0].message.tool_calls
    assert streamed is not None
    assert json.loads(streamed[0].function.arguments) == {"city": "Нижний Новгород"}  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"

    # The result goes back as a tool message; the scripted reply answers.
    app.reply_next("8 degrees")
    follow_up = client.chat.completions.create(
        model="fake-model",
        messages=[
            *messages,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": choice.message.tool_calls[0].id, "content": "8"},
        ],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert follow_up.choices[0].message.content == "8 degrees"


def test_structured_output_with_parse(app: FakeOpenAIServer, client: openai.OpenAI) -> None:
    class City(BaseModel):
        name: str
        population: int

    app.reply_next('{"name": "Kazan", "population": 1300000}')
    parsed = client.chat.completions.parse(
        model="fake-model",
        messages=[{"role": "user", "content": "City?"}],
        response_format=City,
    )
    assert parsed.choices[0].message.parsed == City(name="Kazan", population=1300000)


def test_bad_shapes_are_refused(client: openai.OpenAI) -> None:
    for extra in (
        {"tools": [{"type": "function", "function": {"description": "no name"}}]},
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        {"response_format": {"type": "yaml"}},
    ):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="fake-model",
                messages=[{"role": "user", "content": "x"}],
                **extra,  # type: ignore[arg-type]
            )
    with pytest.raises(openai.BadRequestError, match="tool_call_id"):
        client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "tool", "content": "8"}],  # type: ignore[list-item,misc]
        )


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    texts = ["first text", "second text", "first text"]
    as_floats = client.embeddings.create(model="e", input=texts, encoding_format="float")
    as_base64 = client.embeddings.create(model="e", input=texts)  # the SDK asks for base64
    floats = [d.embedding for d in as_floats.data]
    assert [d.embedding for d in as_base64.data] == floats
    assert all(len(v) == 16 for v in floats)
    assert floats[0] == floats[2] != floats[1]
    assert as_floats.usage.prompt_tokens == 6
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="e", input=[])


def test_ensure_ascii_false_sends_raw_utf8() -> None:
    """Raw U+2028/U+0085 inside the streamed JSON, as servers with ensure_ascii=False send
    them; the official client reads them back whole."""
    text = "one\u2028two\x85three \u2029 end"
    app = FakeOpenAIServer(api_key=KEY, ensure_ascii=False, reply=text)
    with LoopbackServer(app) as server:
        raw = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
        )
        assert "\u2028".encode() in raw.content and "\x85".encode() in raw.content
        client = openai.OpenAI(api_key=KEY, base_url=f"{server.base_url}/v1", max_retries=0)
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text
    escaped = FakeOpenAIServer(api_key=KEY, reply=text)  # the default: \\uXXXX escapes
    with LoopbackServer(escaped) as server:
        raw = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
        )
    assert raw.content.isascii() and b"\\u2028" in raw.content


def test_fail_next_sends_extra_headers(app: FakeOpenAIServer) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    app.fail_next(503, headers={"X-Should-Retry": "false"})
    app.fail_next(429, retry_after=3, headers={"Retry-After": date})
    with LoopbackServer(app) as server:
        client = openai.OpenAI(api_key=KEY, base_url=f"{server.base_url}/v1", max_retries=2)
        with pytest.raises(openai.InternalServerError) as info:
            client.models.list()
        assert info.value.response.headers["x-should-retry"] == "false"
        assert app.request_count == 1  # the official client obeys x-should-retry: false
        response = httpx.get(
            f"{server.base_url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}
        )
    assert response.status_code == 429
    assert response.headers.get_list("retry-after") == [date]  # replaces retry_after=3
