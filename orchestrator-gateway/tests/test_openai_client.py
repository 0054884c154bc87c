"""The official ``openai`` client, unchanged, against the gateway on loopback: every scenario
a client meets (chat, streams, tools, structured output, embeddings, models, each error
class, its own retries). Sync tests: the client runs in this thread, the gateway in the
loopback server's."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from orchestrator_gateway import Gateway

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class City(BaseModel):
    name: str
    population: int


@pytest.fixture
def client_for(
    serve: Callable[[Gateway], str],
) -> Iterator[Callable[..., openai.OpenAI]]:
    clients: list[openai.OpenAI] = []
    urls: dict[int, str] = {}

    def make(app: Gateway, key: str = "sk-test-alice-0123456789", **options: Any) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        if id(app) not in urls:
            urls[id(app)] = serve(app)
        client = openai.OpenAI(base_url=urls[id(app)], api_key=key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_chat(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    a = kit.Scripted("a", "Paris is the capital.")
    client = client_for(gateway_for(kit.router(a)))
    raw = client.chat.completions.with_raw_response.create(
        model="default",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        temperature=0.2,
        max_tokens=50,
        stop="END",
    )
    assert raw.headers["x-orchestrator-provider"] == "a"
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris is the capital."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 15
    messages, params = a.seen[0]
    assert [m.role for m in messages] == ["system", "user"]
    assert params is not None and params.temperature == 0.2 and params.stop == ["END"]
    assert params.max_tokens == 50


def test_stream_with_usage(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    client = client_for(gateway_for(kit.router(kit.Scripted("a", "one two three four"))))
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens == 15
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_tool_round_trip(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    a = kit.Scripted("a", [("get_weather", {"city": "Paris"})], "It is 18C in Paris.")
    client = client_for(gateway_for(kit.router(a)))
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model="default", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # The client echoes the assistant message back as it got it, then the tool's result.
    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": "18C"}]
    final = client.chat.completions.create(
        model="default",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert final.choices[0].message.content == "It is 18C in Paris."
    sent, params = a.seen[-1]
    assert sent[-1].role == "tool" and sent[-1].name == "get_weather"
    assert sent[-1].tool_call_id == call.id
    assert params is not None and params.tool_choice == "get_weather"


def test_streamed_tool_calls(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    client = client_for(gateway_for(kit.router(kit.Scripted("a", calls, calls))))
    request: dict[str, Any] = {
        "model": "default",
        "messages": [{"role": "user", "content": "Weather in Paris and Oslo?"}],
        "tools": [WEATHER_TOOL],
        "parallel_tool_calls": True,
    }
    # The SDK's own accumulator merges the deltas into whole calls.
    with client.chat.completions.stream(**request) as stream:
        final = stream.get_final_completion()
    tool_calls = final.choices[0].message.tool_calls
    assert tool_calls is not None
    assert [json.loads(c.function.arguments)["city"] for c in tool_calls] == ["Paris", "Oslo"]
    assert final.choices[0].finish_reason == "tool_calls"
    # And on the raw stream: one delta entry per call, indexes 0 and 1.
    raw = list(client.chat.completions.create(stream=True, **request))
    entries = [t for c in raw for t in (c.choices[0].delta.tool_calls or [])]
    assert [(t.index, t.function.name) for t in entries] == [
        (0, "get_weather"),
        (1, "get_weather"),
    ]


def test_structured_output(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    answer = '{"name": "Paris", "population": 2100000}'
    a = kit.Scripted("a", answer, answer)
    client = client_for(gateway_for(kit.router(a)))
    parsed = client.chat.completions.parse(
        model="default",
        messages=[{"role": "user", "content": "The capital of France?"}],
        response_format=City,
    )
    assert parsed.choices[0].message.parsed == City(name="Paris", population=2100000)
    _, params = a.seen[0]
    assert params is not None and params.response_format is not None
    assert params.response_format.schema is not None
    assert params.response_format.name == "City"
    plain = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "JSON please"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(plain.choices[0].message.content or "") == {
        "name": "Paris",
        "population": 2100000,
    }


def test_structured_output_that_does_not_validate(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    client = client_for(gateway_for(kit.router(kit.Scripted("a", "not json"))))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.parse(
            model="default", messages=[{"role": "user", "content": "?"}], response_format=City
        )
    assert info.value.status_code >= 500
    assert "not JSON" in info.value.message


def test_embeddings(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    client = client_for(gateway_for(kit.router(kit.Scripted("a"))))
    # The SDK asks for base64 by default and decodes the packed float32 itself.
    result = client.embeddings.create(model="default", input=["a", "bbb"])
    assert [d.embedding for d in result.data] == [[1.0, 0.0, 1.0], [3.0, 1.0, 1.0]]
    assert [d.index for d in result.data] == [0, 1]
    assert result.usage.total_tokens == 2
    floats = client.embeddings.create(model="fast", input="hello", encoding_format="float")
    assert floats.data[0].embedding == [5.0, 0.0, 1.0]


def test_models(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    app = gateway_for(kit.router(kit.Scripted("a"), kit.Scripted("b")))
    ids = [m.id for m in client_for(app).models.list()]
    assert ids == ["default", "fast", "a/a-model", "b/b-model"]
    bob = client_for(app, key=kit.OTHER_KEY)
    assert [m.id for m in bob.models.list()] == ["fast"]
    assert bob.models.retrieve("fast").owned_by == "orchestrator"
    with pytest.raises(openai.NotFoundError):
        bob.models.retrieve("default")


def test_virtual_and_pinned_models(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    a, b = kit.Scripted("a"), kit.Scripted("b")
    client = client_for(gateway_for(kit.router(a, b)))

    def ask(model: str) -> str:
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
        return completion.choices[0].message.content or ""

    assert ask("default") == "hello from a"  # the router: first-available, a first
    assert ask("fast") == "hello from b"  # the virtual model: b first
    assert ask("a/a-model") == "hello from a"
    assert ask("b/other-model") == "hello from b"
    assert b.seen[-1][1] is not None and b.seen[-1][1].model == "other-model"


def test_authentication_and_permission_errors(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    a = kit.Scripted("a")
    app = gateway_for(kit.router(a))
    question = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.AuthenticationError) as auth:
        client_for(app, key="sk-wrong").chat.completions.create(model="default", messages=question)
    assert auth.value.code == "invalid_api_key"
    assert "sk-wrong" not in auth.value.message
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client_for(app, key=kit.OTHER_KEY).chat.completions.create(
            model="default", messages=question
        )
    assert denied.value.code == "model_not_allowed"
    with pytest.raises(openai.NotFoundError) as missing:
        client_for(app).chat.completions.create(model="gpt-99", messages=question)
    assert missing.value.code == "model_not_found"
    assert a.seen == []


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"n": 2}, "n"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
        ({"tool_choice": "required"}, None),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "bad name!"}}}, None),
    ],
)
def test_bad_requests_fail_before_any_provider_call(
    kit: SimpleNamespace,
    gateway_for: Any,
    client_for: Any,
    request_fields: dict[str, Any],
    param: str | None,
) -> None:
    a = kit.Scripted("a")
    client = client_for(gateway_for(kit.router(a)))
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}], **request_fields}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**body)
    if param is not None:
        assert info.value.param == param
    assert a.seen == []


def test_vendor_errors(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    a = kit.Scripted(
        "a",
        ServiceUnavailableError("down", provider="a", status_code=503),
        AuthenticationError("vendor rejected our credentials", provider="a", status_code=401),
        ContextLengthError("too long", provider="a", status_code=400),
        QuotaExceededError("balance spent", provider="a", status_code=402),
        RateLimitError("slow down", provider="a", retry_after=7),
    )
    client = client_for(gateway_for(kit.router(a)))
    question = [{"role": "user", "content": "hi"}]

    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model="default", messages=question)
    assert down.value.status_code == 503
    with pytest.raises(openai.InternalServerError) as upstream_auth:
        client.chat.completions.create(model="default", messages=question)
    assert upstream_auth.value.status_code == 502  # never a 401: the client's key was fine
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="default", messages=question)
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.RateLimitError) as quota:
        client.chat.completions.create(model="default", messages=question)
    assert quota.value.code == "insufficient_quota"
    assert quota.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="default", messages=question)
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.response.headers["retry-after-ms"] == "7000"


def test_request_too_large(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    a = kit.Scripted("a")
    client = client_for(gateway_for(kit.router(a), max_request_bytes=2048))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert info.value.status_code == 413
    assert a.seen == []


def test_key_rate_limit_and_budget(kit: SimpleNamespace, gateway_for: Any, client_for: Any) -> None:
    keys = kit.settings()["keys"]
    keys["alice"] = {**keys["alice"], "requests_per_minute": 2}
    keys["bob"] = {**keys["bob"], "budget": "0.01"}
    app = gateway_for(kit.router(kit.Scripted("a"), kit.Scripted("b")), keys=keys)
    alice = client_for(app)
    question = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        alice.chat.completions.create(model="default", messages=question)
    with pytest.raises(openai.RateLimitError) as limited:
        alice.chat.completions.create(model="default", messages=question)
    assert 0 < int(limited.value.response.headers["retry-after"]) <= 60
    bob = client_for(app, key=kit.OTHER_KEY)
    bob.chat.completions.create(model="fast", messages=question)  # costs 0.02 RUB
    with pytest.raises(openai.RateLimitError) as spent:
        bob.chat.completions.create(model="fast", messages=question)
    assert spent.value.code == "insufficient_quota"


def test_client_retries_on_429_and_503(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    a = kit.Scripted(
        "a",
        RateLimitError("slow down", provider="a", retry_after=0.05),
        ServiceUnavailableError("blip", provider="a", status_code=503),
        "third time lucky",
    )
    client = client_for(gateway_for(kit.router(a)), max_retries=2)
    completion = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "third time lucky"
    assert len(a.seen) == 3


def test_client_does_not_retry_a_spent_quota(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    a = kit.Scripted("a", QuotaExceededError("spent", provider="a", status_code=402), "no")
    client = client_for(gateway_for(kit.router(a)), max_retries=2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])
    assert len(a.seen) == 1


def test_mid_stream_failure_is_an_error_event(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    client = client_for(gateway_for(kit.router(kit.Scripted("a", kit.Cut("Once upon")))))
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "story"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Once upon"
    assert "after" in info.value.message or "interrupted" in info.value.message.lower()


def test_failure_before_the_first_token_is_an_http_error(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    a = kit.Scripted("a", ServiceUnavailableError("down", provider="a", status_code=503))
    client = client_for(gateway_for(kit.router(a)))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}], stream=True
        )


def test_stream_fails_over_before_the_first_token(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    a = kit.Scripted("a", ServiceUnavailableError("down", provider="a", status_code=503))
    b = kit.Scripted("b", "from b")
    client = client_for(gateway_for(kit.router(a, b)))
    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert raw.headers["x-orchestrator-provider"] == "b"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "from b"


def test_a_client_that_goes_away_closes_the_providers_stream(
    kit: SimpleNamespace, gateway_for: Any, serve: Callable[[Gateway], str]
) -> None:
    a = kit.Scripted("a", "a long story, told slowly", pause=2)
    base = serve(gateway_for(kit.router(a)))
    body = {"model": "default", "messages": [{"role": "user", "content": "x"}], "stream": True}
    headers = {"authorization": f"Bearer {kit.KEY}"}
    with (
        httpx.Client() as http,
        http.stream("POST", f"{base}/chat/completions", json=body, headers=headers) as response,
    ):
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    # The connection is closed: the gateway cancels the request, the router closes the
    # provider's stream, long before the story would have ended.
    until = time.monotonic() + 10
    while not a.streams_ended and time.monotonic() < until:
        time.sleep(0.02)
    assert a.streams_ended == ["closed early"]


def test_retry_after_is_passed_on_while_the_router_is_held_off(
    kit: SimpleNamespace, gateway_for: Any, client_for: Any
) -> None:
    a = kit.Scripted("a", RateLimitError("slow down", provider="a", retry_after=30))
    client = client_for(gateway_for(kit.router(a)))
    question = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="default", messages=question)
    # The provider is held off now: the gateway answers 429 without asking it again.
    with pytest.raises(openai.RateLimitError) as again:
        client.chat.completions.create(model="default", messages=question)
    assert 25 <= int(again.value.response.headers["retry-after"]) <= 30
    assert len(a.seen) == 1
