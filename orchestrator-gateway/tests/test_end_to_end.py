"""End to end over real HTTP twice: the official ``openai`` client -> the gateway -> the router
-> orchestrator-openai's provider -> the contract kit's FakeOpenAIServer (a vendor on loopback,
its model scripted). Also: the vendor's key never leaves the gateway."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from orchestrator import Router
from orchestrator.health import BreakerConfig
from orchestrator.plugins import PluginRegistry
from orchestrator.testing import FakeOpenAIServer, LoopbackServer
from orchestrator_gateway import Gateway, create_app, hash_key
from orchestrator_openai import OpenAIConfig, OpenAIProvider

VENDOR_KEY = "sk-vendor-secret-do-not-leak-0123456789"
CLIENT_KEY = "sk-client-0123456789"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
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


@dataclass
class Stack:
    vendor: FakeOpenAIServer
    client: openai.OpenAI
    raw: list[str]  # every response body and header the client got, to look for leaks


@pytest.fixture
def stack(serve: Callable[[Gateway], str]) -> Iterator[Stack]:
    vendor = FakeOpenAIServer(api_key=VENDOR_KEY, embedding_dimension=8)
    with LoopbackServer(vendor) as vendor_server:
        config = OpenAIConfig(
            name="oai",
            base_url=f"{vendor_server.base_url}/v1",
            api_key=VENDOR_KEY,
            model="fake-model",
            embedding_model="fake-embed",
            embedding_dimension=8,
            max_retries=0,
        )
        router = Router(
            "first-available",
            registry=PluginRegistry(),
            breaker=BreakerConfig(consecutive_failures=100),
        )
        router.add_provider(OpenAIProvider(config))
        app = create_app(router, {"keys": {"ci": {"key_sha256": hash_key(CLIENT_KEY)}}})
        raw: list[str] = []

        def record(response: Any) -> None:
            response.read()
            raw.append(response.text)
            raw.append(json.dumps(dict(response.headers)))

        # The SDK's own client class (httpx2 on openai 3.x, httpx before), with a hook.
        http_client = openai.DefaultHttpxClient(event_hooks={"response": [record]})
        client = openai.OpenAI(
            base_url=serve(app), api_key=CLIENT_KEY, max_retries=0, http_client=http_client
        )
        try:
            yield Stack(vendor, client, raw)
        finally:
            client.close()
    leaked = [text for text in raw if VENDOR_KEY in text]
    assert not leaked, "the vendor's key reached the client"


QUESTION: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]


def test_chat_and_stream(stack: Stack) -> None:
    answer = stack.client.chat.completions.create(model="default", messages=QUESTION)
    assert answer.choices[0].message.content == "Echo: Weather in Paris?"
    chunks = list(
        stack.client.chat.completions.create(
            model="oai/fake-model",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Weather in Paris?"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    # The vendor saw the gateway's credentials, never the client's.
    sent = [r for r in stack.vendor.requests if r.path.endswith("/chat/completions")]
    assert sent and all(r.headers.get("authorization") == f"Bearer {VENDOR_KEY}" for r in sent)


def test_tools_plain_and_streamed(stack: Stack) -> None:
    stack.vendor.call_tools_next(("get_weather", {"city": "Paris"}), times=2)
    first = stack.client.chat.completions.create(
        model="default", messages=QUESTION, tools=[WEATHER]
    )
    (call,) = first.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    # The vendor streams the arguments in fragments; the client's accumulator gets them whole.
    with stack.client.chat.completions.stream(
        model="default", messages=QUESTION, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_completion()
    (streamed,) = final.choices[0].message.tool_calls or []
    assert json.loads(streamed.function.arguments) == {"city": "Paris"}
    stack.vendor.reply_next("It is 18C in Paris.")
    history = [
        *QUESTION,
        first.choices[0].message,
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    done = stack.client.chat.completions.create(model="default", messages=history, tools=[WEATHER])
    assert done.choices[0].message.content == "It is 18C in Paris."


def test_structured_output(stack: Stack) -> None:
    stack.vendor.reply_next('{"name": "Paris", "population": 2100000}')
    parsed = stack.client.chat.completions.parse(
        model="default", messages=QUESTION, response_format=City
    )
    assert parsed.choices[0].message.parsed == City(name="Paris", population=2100000)


def test_embeddings(stack: Stack) -> None:
    result = stack.client.embeddings.create(model="default", input=["a", "b", "a"])
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [8, 8, 8]
    assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != vectors[1]


def test_vendor_errors_reach_the_client_as_the_right_class(stack: Stack) -> None:
    stack.vendor.fail_next(429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as limited:
        stack.client.chat.completions.create(model="default", messages=QUESTION)
    assert limited.value.response.headers["retry-after"] == "3"
    stack.vendor.fail_next(401, message=f"bad key {VENDOR_KEY}")
    with pytest.raises(openai.InternalServerError) as upstream:
        stack.client.chat.completions.create(model="oai", messages=QUESTION)
    assert upstream.value.status_code == 502
    # The vendor's message came through, with its key redacted (the fixture checks every
    # byte the client received).
    assert "bad key ***" in upstream.value.message


def test_a_cut_vendor_stream_is_an_error_event(stack: Stack) -> None:
    stack.vendor.reply_next("one two three four five six")
    stack.vendor.cut_next_stream(after_chunks=2)
    stream = stack.client.chat.completions.create(model="default", messages=QUESTION, stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
