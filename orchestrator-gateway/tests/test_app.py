"""The ASGI app driven in-process (httpx's ASGI transport), on asyncio and trio: the exact
wire shapes, health, limits, and every check that must happen before a provider is called."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from orchestrator.errors import (
    ConfigurationError,
    ModelNotFoundError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)
from orchestrator_gateway import Gateway, LocalKeyState, SharedKeyState, create_app
from orchestrator_gateway.keys import Client

pytestmark = pytest.mark.anyio

AUTH = {"authorization": "Bearer sk-test-alice-0123456789"}
HI = [{"role": "user", "content": "hi"}]


def client(app: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def events(body: str) -> list[Any]:
    out: list[Any] = []
    for block in body.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def test_health(kit: SimpleNamespace, gateway_for: Any) -> None:
    app = gateway_for(kit.router(kit.Scripted("a")))
    async with client(app) as http:
        live = await http.get("/health/liveliness")
        assert (live.status_code, live.json()) == (200, "I'm alive!")
        ready = await http.get("/health/readiness")
        assert ready.status_code == 200
        assert ready.json()["status"] == "healthy"
        assert ready.json()["providers"] == {"a": "closed"}
        assert (await http.post("/health/readiness")).status_code == 405
        app.begin_shutdown()
        assert (await http.get("/health/liveness")).json() == {"status": "shutting_down"}
        assert (await http.get("/health/readiness")).status_code == 503
        refused = await http.post("/v1/chat/completions", json={}, headers=AUTH)
        assert refused.status_code == 503
        assert refused.headers["x-should-retry"] == "true"


async def test_readiness_when_every_breaker_is_open(kit: SimpleNamespace, gateway_for: Any) -> None:
    router = kit.router(kit.Scripted("a"))
    app = gateway_for(router)
    for slot in router.slots:
        for _ in range(100):
            slot.breaker.on_failure(ServiceUnavailableError("down"))
    async with client(app) as http:
        ready = await http.get("/health/readiness")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unhealthy"


async def test_stream_wire_shape(kit: SimpleNamespace, gateway_for: Any) -> None:
    app = gateway_for(kit.router(kit.Scripted("a", "abcdef")))
    body = {
        "model": "default",
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    got = events(response.text)
    assert got[-1] == "[DONE]"
    *chunks, usage, _ = got
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "ab"}
    assert all(c["usage"] is None for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


async def test_stream_without_usage_has_no_usage_field(
    kit: SimpleNamespace, gateway_for: Any
) -> None:
    app = gateway_for(kit.router(kit.Scripted("a", "abc")))
    body = {"model": "default", "messages": HI, "stream": True}
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    got = events(response.text)
    assert got[-1] == "[DONE]"
    assert all("usage" not in c for c in got[:-1])


async def test_streamed_tool_call_entries(kit: SimpleNamespace, gateway_for: Any) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("get_time", {})]
    app = gateway_for(kit.router(kit.Scripted("a", calls)))
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        for name in ("get_weather", "get_time")
    ]
    body = {"model": "default", "messages": HI, "stream": True, "tools": tools}
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    chunks = [c for c in events(response.text) if c != "[DONE]"]
    entries = [t for c in chunks for t in c["choices"][0]["delta"].get("tool_calls", [])]
    assert entries == [
        {
            "index": 0,
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "index": 1,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_time", "arguments": "{}"},
        },
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_mid_stream_error_event(kit: SimpleNamespace, gateway_for: Any) -> None:
    a = kit.Scripted("a", kit.Cut("Once"))
    app = gateway_for(kit.router(a))
    body = {"model": "default", "messages": HI, "stream": True}
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    got = events(response.text)
    assert "[DONE]" not in got, "a broken stream must not look complete"
    assert got[0]["choices"][0]["delta"]["content"] == "Once"
    assert got[-1]["error"]["code"] == "stream_interrupted"
    assert set(got[-1]["error"]) == {"message", "type", "param", "code"}


async def test_embeddings_base64_is_packed_float32(kit: SimpleNamespace, gateway_for: Any) -> None:
    app = gateway_for(kit.router(kit.Scripted("a")))
    body = {"model": "default", "input": ["ab", "c"], "encoding_format": "base64"}
    async with client(app) as http:
        response = await http.post("/v1/embeddings", json=body, headers=AUTH)
    data = response.json()["data"]
    decoded = [struct.unpack("<3f", base64.b64decode(d["embedding"])) for d in data]
    assert decoded == [(2.0, 0.0, 1.0), (1.0, 1.0, 1.0)]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "default", "input": []}, "input"),
        ({"model": "default", "input": [""]}, "input"),
        ({"model": "default", "input": [[1, 2]]}, "input"),
        ({"model": "default", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "default", "input": "x", "dimensions": 3}, "dimensions"),
        ({"input": "x"}, "model"),
        ({"model": "a/other", "input": "x"}, "model"),
        ({"model": "x\ny", "input": "x"}, "model"),
        ({"model": "m" * 300, "input": "x"}, "model"),
        ([1, 2], None),
    ],
)
async def test_embeddings_validation(
    kit: SimpleNamespace, gateway_for: Any, body: Any, param: str | None
) -> None:
    a = kit.Scripted("a")
    app = gateway_for(kit.router(a))
    async with client(app) as http:
        response = await http.post("/v1/embeddings", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert a.embedded == []


async def test_too_many_embedding_inputs(kit: SimpleNamespace, gateway_for: Any) -> None:
    app = gateway_for(kit.router(kit.Scripted("a")), max_embedding_inputs=2)
    async with client(app) as http:
        response = await http.post(
            "/v1/embeddings", json={"model": "default", "input": ["a", "b", "c"]}, headers=AUTH
        )
    assert response.status_code == 400


async def test_embedding_errors(kit: SimpleNamespace, gateway_for: Any) -> None:
    a = kit.Scripted("a")
    a.embed_errors.append(RateLimitError("slow", provider="a", retry_after=2.5))
    app = gateway_for(kit.router(a))
    async with client(app) as http:
        response = await http.post(
            "/v1/embeddings", json={"model": "a", "input": "x"}, headers=AUTH
        )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["retry-after-ms"] == "2500"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[]", 400, None),
        (json.dumps({"model": "default", "messages": HI, "stream": "yes"}).encode(), 400, None),
        (
            json.dumps(
                {"model": "default", "messages": HI, "stream_options": {"include_usage": True}}
            ).encode(),
            400,
            None,
        ),
        (
            json.dumps(
                {
                    "model": "default",
                    "messages": [{"role": "user", "content": [{"type": "image_url"}]}],
                }
            ).encode(),
            400,
            None,
        ),
        (
            json.dumps({"model": "default", "messages": HI, "tool_choice": {"type": "x"}}).encode(),
            400,
            None,
        ),
        (json.dumps({"model": "default", "messages": HI, "max_tokens": 0}).encode(), 400, None),
    ],
)
async def test_request_validation(
    kit: SimpleNamespace, gateway_for: Any, content: bytes, status: int, code: str | None
) -> None:
    a = kit.Scripted("a")
    app = gateway_for(kit.router(a))
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", content=content, headers=AUTH)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    assert a.seen == []


async def test_message_shapes_the_official_client_sends(
    kit: SimpleNamespace, gateway_for: Any
) -> None:
    a = kit.Scripted("a")
    app = gateway_for(kit.router(a))
    messages = [
        {
            "role": "developer",
            "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        },
        {"role": "user", "content": "hi", "name": "alice"},
        {"role": "assistant", "content": "hello", "refusal": None, "audio": None},
        {"role": "user", "content": "again"},
    ]
    body = {"model": "default", "messages": messages, "user": "u1", "seed": 3}
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    sent, params = a.seen[0]
    assert [(m.role, m.content) for m in sent] == [
        ("system", "Be brief."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "again"),
    ]
    assert params is None


async def test_routes_methods_and_auth(kit: SimpleNamespace, gateway_for: Any) -> None:
    app = gateway_for(kit.router(kit.Scripted("a")))
    async with client(app) as http:
        assert (await http.get("/v2/nothing", headers=AUTH)).status_code == 404
        assert (await http.get("/v1/chat/completions", headers=AUTH)).status_code == 405
        assert (await http.post("/v1/models", headers=AUTH)).status_code == 405
        missing = await http.get("/v1/models")
        assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_api_key")
        basic = await http.get("/v1/models", headers={"authorization": "Basic abc"})
        assert basic.status_code == 401
        # Without /v1 too, as LiteLLM serves them.
        assert (await http.get("/models", headers=AUTH)).status_code == 200
        response = await http.post(
            "/chat/completions", json={"model": "default", "messages": HI}, headers=AUTH
        )
        assert response.json()["choices"][0]["message"]["content"] == "hello from a"
        assert (await http.get("/v1/models/nope", headers=AUTH)).status_code == 404


async def test_body_size_limit_without_content_length(
    kit: SimpleNamespace, gateway_for: Any
) -> None:
    a = kit.Scripted("a")
    app = gateway_for(kit.router(a), max_request_bytes=1024)

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 200

    async with client(app) as http:
        response = await http.post("/v1/chat/completions", content=chunks(), headers=AUTH)
    assert response.status_code == 413
    assert a.seen == []


async def test_unauthenticated_development_mode(kit: SimpleNamespace) -> None:
    app = create_app(kit.router(kit.Scripted("a")), {"allow_unauthenticated": True})
    async with client(app) as http:
        response = await http.post(
            "/v1/chat/completions", json={"model": "default", "messages": HI}
        )
        assert response.status_code == 200
        assert (await http.get("/v1/models", headers=AUTH)).status_code == 401


async def test_errors_map_to_statuses(kit: SimpleNamespace, gateway_for: Any) -> None:
    class Bug(Exception):
        pass

    a = kit.Scripted(
        "a",
        ProviderTimeoutError("slow", provider="a"),
        ModelNotFoundError("no such model", provider="a", status_code=404),
    )
    router = kit.router(a)
    app = gateway_for(router)
    async with client(app) as http:

        async def status() -> tuple[int, str]:
            response = await http.post(
                "/v1/chat/completions", json={"model": "default", "messages": HI}, headers=AUTH
            )
            return response.status_code, response.json()["error"]["code"]

        assert await status() == (504, "upstream_timeout")
        assert await status() == (404, "model_not_found")
        a.answers.append(Bug("secret details"))  # type: ignore[arg-type]

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise Bug("secret details")

        router.chat = broken
        response = await http.post(
            "/v1/chat/completions", json={"model": "default", "messages": HI}, headers=AUTH
        )
        assert response.status_code == 500
        assert "secret details" not in response.text
        assert "Bug" in response.json()["error"]["message"]


async def test_a_key_without_budget_room_is_refused_before_any_call(
    kit: SimpleNamespace,
) -> None:
    clock = [0.0]
    state = LocalKeyState(clock=lambda: clock[0])
    keys = kit.settings()["keys"]
    keys["alice"] = {**keys["alice"], "tokens_per_minute": 20}
    a = kit.Scripted("a")
    app = create_app(
        kit.router(a), {**kit.settings(), "keys": keys, "models": {}}, key_state=state, env=kit.ENV
    )
    async with client(app) as http:

        async def ask() -> httpx.Response:
            return await http.post(
                "/v1/chat/completions", json={"model": "default", "messages": HI}, headers=AUTH
            )

        assert (await ask()).status_code == 200  # 15 tokens
        assert (await ask()).status_code == 200  # 30: over, from now on
        limited = await ask()
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "60"
        clock[0] = 60.5
        assert (await ask()).status_code == 200
    alice = next(c for c in app.keyring._by_hash.values() if c.name == "alice")
    assert await state.spent(alice) == Decimal("0.06")
    assert len(a.seen) == 3


async def test_local_key_state_counts_requests_exactly() -> None:
    from orchestrator_gateway import KeySettings

    clock = [0.0]
    state = LocalKeyState(clock=lambda: clock[0])
    client_ = Client("c", KeySettings(key_sha256="a" * 64, requests_per_minute=3))
    for _ in range(3):
        await state.admit(client_)
        clock[0] += 1
    with pytest.raises(Exception, match="3 requests per minute") as info:
        await state.admit(client_)
    assert getattr(info.value, "retry_after", None) == pytest.approx(57)
    clock[0] = 60.0
    await state.admit(client_)


async def test_lifespan_closes_an_owned_router(kit: SimpleNamespace) -> None:
    router = kit.router(kit.Scripted("a"))
    closed = []

    async def aclose() -> None:
        closed.append(True)

    router.aclose = aclose
    app = Gateway(
        router,
        create_app(router, kit.settings(models={}), env=kit.ENV).settings,
        env=kit.ENV,
        owns_router=True,
    )
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed == [True]
    assert app.shutting_down
    await app({"type": "websocket"}, receive, send)  # ignored


async def test_bad_virtual_model_is_a_configuration_error(kit: SimpleNamespace) -> None:
    with pytest.raises(ConfigurationError, match=r"gateway\.models\.fast"):
        create_app(
            kit.router(kit.Scripted("a")),
            kit.settings(models={"fast": {"providers": ["nope"]}}),
            env=kit.ENV,
        )


async def test_deeply_nested_json_is_a_bad_request(kit: SimpleNamespace, gateway_for: Any) -> None:
    app = gateway_for(kit.router(kit.Scripted("a")))
    async with client(app) as http:
        response = await http.post(
            "/v1/chat/completions", content=b"[" * 200_000 + b"]" * 200_000, headers=AUTH
        )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json")


async def test_a_failure_after_the_response_started_does_not_send_a_second_one(
    kit: SimpleNamespace,
) -> None:
    class Broken(LocalKeyState):
        async def record(self, client: Client, tokens: int, cost: Decimal | None) -> None:
            raise RuntimeError("the counter store is down")

    app = create_app(
        kit.router(kit.Scripted("a", "abc")),
        kit.settings(models={}),
        key_state=Broken(),
        env=kit.ENV,
    )
    body = {"model": "default", "messages": HI, "stream": True}
    async with client(app) as http:
        response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200
    assert events(response.text)[-1] == "[DONE]"


async def test_shared_key_state_counts_requests_in_the_routers_shared_state(
    kit: SimpleNamespace,
) -> None:
    class FakeShared:
        """What orchestrator-redis's RedisState.acquire does, for one process."""

        def __init__(self) -> None:
            self.counts: dict[str, int] = {}
            self.calls: list[tuple[str, Any, int]] = []

        async def acquire(self, scope: str, limits: Any, estimate: int = 0) -> str | None:
            self.calls.append((scope, limits, estimate))
            if self.counts.get(scope, 0) >= limits.requests_per_minute:
                return "requests_per_minute"
            self.counts[scope] = self.counts.get(scope, 0) + 1
            return None

    shared = FakeShared()
    keys = kit.settings()["keys"]
    keys["alice"] = {**keys["alice"], "requests_per_minute": 2, "budget": "0.05"}
    state = SharedKeyState(shared)
    app = create_app(
        kit.router(kit.Scripted("a")),
        {**kit.settings(), "keys": keys, "models": {"fast": {"providers": ["a"]}}},
        key_state=state,
        env=kit.ENV,
    )
    async with client(app) as http:

        async def ask(headers: dict[str, str] = AUTH) -> httpx.Response:
            return await http.post(
                "/v1/chat/completions", json={"model": "default", "messages": HI}, headers=headers
            )

        assert [(await ask()).status_code for _ in range(2)] == [200, 200]
        limited = await ask()
        assert limited.status_code == 429
        assert "shared by every replica" in limited.json()["error"]["message"]
        assert limited.headers["retry-after-ms"] == "30000"
        shared.counts.clear()  # a new minute
        assert (await ask()).status_code == 200  # 0.06 RUB spent of 0.05 now...
        spent = await ask()  # ...and the budget, kept per process, says no
        assert spent.json()["error"]["code"] == "insufficient_quota"
        bob = {"authorization": f"Bearer {kit.OTHER_KEY}"}  # no rpm: never asks the store
        other = await http.post(
            "/v1/chat/completions", json={"model": "fast", "messages": HI}, headers=bob
        )
        assert other.status_code == 200
    assert {scope for scope, _, _ in shared.calls} == {"gateway-key:alice"}
    alice = next(c for c in app.keyring._by_hash.values() if c.name == "alice")
    assert await state.spent(alice) == Decimal("0.06")


async def test_a_body_that_never_arrives_is_a_408(kit: SimpleNamespace, gateway_for: Any) -> None:
    import anyio

    a = kit.Scripted("a")
    app = gateway_for(kit.router(a), body_timeout=0.05)
    sent: list[Any] = []
    first = True

    async def receive() -> Any:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'{"model": ', "more_body": True}
        await anyio.sleep_forever()

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", AUTH["authorization"].encode())],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["error"]["code"] == "request_timeout"
    assert a.seen == []
