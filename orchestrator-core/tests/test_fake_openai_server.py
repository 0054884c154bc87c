"""The contract kit's FakeOpenAIServer speaks tools, structured output and embeddings the way
the official ``openai`` client expects (the client is the yardstick, not our provider)."""

from __future__ import annotations

import json
from collections.abc import Iterator

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
