"""The emulator's wire behaviour, driven with plain httpx over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_openai.emulator import TEST_API_KEY, OpenAIEmulator


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    with httpx.Client(base_url=f"{server.base_url}/v1", headers=headers) as http:
        yield http


def chat(client: httpx.Client, **body: object) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], **body}
    return client.post("/chat/completions", json=payload)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": ""}, "model parameter"),
        ({"messages": "hi"}, "too short"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": 5}]}, "content"),
        ({"messages": [{"role": "tool", "tool_call_id": "c1", "content": "18C"}]}, "tool_calls"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": True}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_validation_errors(client: httpx.Client, body: dict[str, object], fragment: str) -> None:
    response = chat(client, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["x-request-id"].startswith("req_")


def test_not_json_body(client: httpx.Client) -> None:
    response = client.post(
        "/chat/completions", content=b"{", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_tool_result_after_its_call_is_accepted(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "18C"}]},
    ]
    response = chat(client, messages=messages)
    assert response.status_code == 200
    # The "model" answers with the tool's result (text parts joined).
    assert response.json()["choices"][0]["message"]["content"] == "OpenAI emulator: w returned 18C"


def test_context_window(server: LoopbackServer, emulator: OpenAIEmulator, client) -> None:
    emulator.context_window = 5
    response = chat(client, messages=[{"role": "user", "content": "a b c d e f"}])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    emulator.context_window = 128_000


def test_retry_headers_and_missing_key(server: LoopbackServer, emulator: OpenAIEmulator) -> None:
    emulator.fail_next(429, retry_after=1.5, retry_after_ms=1500, should_retry=True)
    with httpx.Client(base_url=f"{server.base_url}/v1") as anonymous:
        response = anonymous.get("/models")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1.5"
        assert response.headers["retry-after-ms"] == "1500"
        assert response.headers["x-should-retry"] == "true"
        missing = anonymous.get("/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["message"] == "You didn't provide an API key."


def test_api_key_scheme_can_be_refused(loopback_server) -> None:
    app = OpenAIEmulator(accept_api_key_scheme=False)
    server = loopback_server(app)
    headers = {"Authorization": f"Api-Key {TEST_API_KEY}"}
    response = httpx.get(f"{server.base_url}/v1/models", headers=headers)
    assert response.status_code == 401


def test_outage_and_latency_reset(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.outage = True
    assert client.get("/models").status_code == 503
    emulator.reset()
    assert client.get("/models").status_code == 200
    assert emulator.request_count == 1
