"""The OpenAI provider against its emulator: payloads, streams, errors, retries, config."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import pytest

from orchestrator import Router
from orchestrator.errors import (
    AuthenticationError,
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    TransportError,
)
from orchestrator.plugins import PluginRegistry
from orchestrator.providers import ProviderConfig
from orchestrator.testing import LoopbackServer
from orchestrator.types import GenerationParams, Message
from orchestrator_openai import OpenAIConfig, OpenAIProvider
from orchestrator_openai.emulator import (
    BreakStream,
    ErrorEvent,
    MalformedLine,
    NoDone,
    OpenAIEmulator,
    Pass,
    config_for,
)

pytestmark = pytest.mark.anyio
Make = Callable[..., OpenAIProvider]
HI = [Message("user", "hi there")]


async def test_chat_payload_headers_and_completion(make_provider: Make, emulator) -> None:
    provider = make_provider(organization="org-1", project="proj-1", extra_headers={"X-A": "b"})
    params = GenerationParams(temperature=0.0, top_p=0.5, max_tokens=64, stop=["END"])
    completion = await provider.chat([Message("system", "be brief"), *HI], params)
    assert completion.text == "OpenAI emulator: hi there"
    assert completion.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert completion.usage.cached_prompt_tokens == 0
    assert completion.usage.reasoning_tokens == 0
    assert completion.request_id and completion.request_id.startswith("req_")
    assert completion.extra["id"].startswith("chatcmpl-")
    assert completion.extra["system_fingerprint"] == "fp_emulator"
    sent = emulator.requests[-1]
    body = sent.json()
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi there"},
        ],
        "temperature": 0.0,
        "top_p": 0.5,
        "max_tokens": 64,
        "stop": ["END"],
    }
    assert sent.headers["authorization"] == f"Bearer {emulator.api_key}"
    assert sent.headers["openai-organization"] == "org-1"
    assert sent.headers["openai-project"] == "proj-1"
    assert sent.headers["x-a"] == "b"
    assert sent.headers["user-agent"].startswith("orchestrator-openai/")
    await provider.aclose()


async def test_max_completion_tokens_and_length(make_provider: Make, emulator) -> None:
    provider = make_provider(max_tokens_param="max_completion_tokens")
    completion = await provider.chat(
        [Message("user", "one two three four")], GenerationParams(max_tokens=2)
    )
    assert completion.finish_reason == "length"
    assert completion.text == "OpenAI emulator"
    assert emulator.requests[-1].json()["max_completion_tokens"] == 2
    assert "max_tokens" not in emulator.requests[-1].json()
    await provider.aclose()


async def test_stream_usage_on_last_chunk(make_provider: Make, emulator) -> None:
    provider = make_provider()
    chunks = [c async for c in provider.stream(HI)]
    assert "".join(c.delta for c in chunks) == "OpenAI emulator: hi there"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    body = emulator.requests[-1].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert emulator.requests[-1].headers["accept"] == "text/event-stream"
    await provider.aclose()


async def test_stream_without_usage_option(make_provider: Make, emulator) -> None:
    provider = make_provider(stream_usage=False)
    chunks = [c async for c in provider.stream(HI)]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is None
    assert "stream_options" not in emulator.requests[-1].json()
    await provider.aclose()


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        (NoDone(), "without data: \\[DONE\\]"),
        (MalformedLine(after_chunks=1), "malformed event"),
        (ErrorEvent(after_chunks=1, message="overloaded"), "reported an error: overloaded"),
        (BreakStream(after_chunks=1), "broke|without data"),
    ],
)
async def test_broken_streams_raise_stream_error(
    make_provider: Make, emulator, fault, match: str, caplog
) -> None:
    caplog.set_level(logging.CRITICAL, logger="uvicorn.error")
    emulator.script(fault)
    provider = make_provider()
    with pytest.raises(StreamError, match=match) as info:
        async for _ in provider.stream([Message("user", "a b c d")]):
            pass
    assert info.value.provider == "openai"
    await provider.aclose()


@pytest.mark.parametrize(
    ("status", "code", "expected", "transient"),
    [
        (400, None, InvalidRequestError, False),
        (400, "context_length_exceeded", ContextLengthError, False),
        (401, None, AuthenticationError, False),
        (402, None, QuotaExceededError, False),
        (404, None, ModelNotFoundError, False),
        (408, None, ProviderTimeoutError, True),
        (409, None, ServiceUnavailableError, True),
        (418, None, InvalidRequestError, False),
        (429, None, RateLimitError, True),
        (429, "insufficient_quota", QuotaExceededError, False),
        (500, None, ServiceUnavailableError, True),
        (502, None, ServiceUnavailableError, True),
    ],
)
async def test_status_mapping(
    make_provider: Make, emulator, status, code, expected, transient
) -> None:
    emulator.fail_next(status, code=code, message="vendor says no")
    provider = make_provider()
    with pytest.raises(ProviderError) as info:
        await provider.chat(HI)
    assert type(info.value) is expected
    assert info.value.transient is transient
    assert info.value.status_code == status
    assert "vendor says no" in str(info.value)
    assert info.value.request_id and info.value.request_id.startswith("req_")
    await provider.aclose()


async def test_retry_headers_as_the_sdk_reads_them(make_provider: Make, emulator) -> None:
    provider = make_provider(max_retries=3, backoff_max=5.0)
    emulator.fail_next(429, retry_after_ms=20, retry_after=30)  # ms wins
    emulator.fail_next(503, should_retry=False)
    with pytest.raises(ServiceUnavailableError) as info:
        await provider.chat(HI)
    assert info.value.transient is False  # x-should-retry: false
    assert emulator.request_count == 2  # the 429 was retried after 20 ms, the 503 was not

    emulator.fail_next(400, should_retry=True)  # x-should-retry: true beats the status
    assert (await provider.chat(HI)).text
    assert emulator.request_count == 4

    emulator.fail_next(429, retry_after=121)  # over the SDK's 120 s: not retried
    with pytest.raises(RateLimitError) as held:
        await provider.chat(HI)
    assert held.value.transient is False
    assert held.value.retry_after == pytest.approx(121)
    assert emulator.request_count == 5
    await provider.aclose()


async def test_router_holds_off_on_retry_after_and_fails_over(server: LoopbackServer) -> None:
    first, second = OpenAIEmulator(), OpenAIEmulator()
    with LoopbackServer(first) as one, LoopbackServer(second) as two:
        router = Router(registry=PluginRegistry(entry_points=False))
        router.add_provider(OpenAIProvider(config_for(one, name="a", max_retries=0)))
        router.add_provider(OpenAIProvider(config_for(two, name="b", max_retries=0)))
        first.fail_next(429, retry_after=60)
        async with router:
            completion = await router.chat(HI)
        assert completion.provider == "b"
        assert first.request_count == 1


async def test_list_models_and_health(make_provider: Make, emulator) -> None:
    provider = make_provider()
    models = await provider.list_models()
    assert [m.id for m in models] == list(emulator.models)
    assert models[0].owned_by == "openai"
    assert await provider.health_check() is True
    emulator.outage = True
    assert await provider.health_check() is False
    await provider.aclose()


async def test_unknown_model_is_model_not_found(make_provider: Make) -> None:
    provider = make_provider(model="gpt-9-imaginary")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        await provider.chat(HI)
    await provider.aclose()


async def test_wrong_key_and_api_key_scheme(make_provider: Make, emulator) -> None:
    provider = make_provider(api_key="sk-wrong-000000000")
    with pytest.raises(AuthenticationError, match="Incorrect API key") as info:
        await provider.chat(HI)
    assert "sk-wrong-000000000" not in str(info.value)
    await provider.aclose()
    yandex_style = make_provider(auth_scheme="Api-Key")
    assert (await yandex_style.chat(HI)).text
    assert emulator.requests[-1].headers["authorization"] == f"Api-Key {emulator.api_key}"
    await yandex_style.aclose()


async def test_keyless_local_server(loopback_server) -> None:
    app = OpenAIEmulator(api_key=None)
    server = loopback_server(app)
    provider = OpenAIProvider(config_for(server, api_key=None, max_retries=0))
    assert (await provider.chat(HI)).text
    assert "authorization" not in app.requests[-1].headers
    await provider.aclose()


async def test_not_json_and_not_sse_answers(loopback_server) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def html(request) -> PlainTextResponse:
        return PlainTextResponse("<html>login</html>", media_type="text/html")

    app = Starlette(routes=[Route("/v1/chat/completions", html, methods=["POST"])])
    server = loopback_server(app)
    provider = OpenAIProvider(OpenAIConfig(base_url=f"{server.base_url}/v1", max_retries=0))
    with pytest.raises(ProviderError, match="not JSON"):
        await provider.chat(HI)
    with pytest.raises(StreamError, match="not an event stream"):
        async for _ in provider.stream(HI):
            pass
    await provider.aclose()


async def test_connection_refused_is_transport_error(emulator) -> None:
    with LoopbackServer(emulator) as server:
        config = config_for(server, max_retries=0)
    provider = OpenAIProvider(config)
    with pytest.raises(TransportError, match="POST /chat/completions failed"):
        await provider.chat(HI)
    await provider.aclose()


async def test_script_pass_and_cancelled_stream(make_provider: Make, emulator) -> None:
    emulator.script(Pass())
    provider = make_provider()
    with anyio.fail_after(10):
        stream = provider.stream(HI)
        first = await anext(stream)
        assert first.delta
        await stream.aclose()
    await provider.aclose()


def test_missing_key_for_openai_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIProvider(ProviderConfig(name="openai"))


def test_bad_ca_bundle(tmp_path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="PEM"):
        OpenAIProvider(OpenAIConfig(base_url="http://x/v1", ca_bundle_file=str(bogus)))


def test_verify_ssl_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    OpenAIProvider(OpenAIConfig(base_url="https://x/v1", verify_ssl=False))
    assert "verification is OFF" in caplog.text


async def test_unicode_line_separators_inside_a_streamed_answer(make_provider: Make) -> None:
    # The emulator sends JSON with raw (unescaped) U+2028 and U+0085, as servers whose JSON
    # encoder keeps non-ASCII do; a str.splitlines-based reader would tear those events apart.
    provider = make_provider()
    prompt = [Message("user", "one\u2028two\x85three \u2029 end")]
    streamed = "".join([c.delta async for c in provider.stream(prompt)])
    assert streamed == (await provider.chat(prompt)).text == f"OpenAI emulator: {prompt[0].content}"
    await provider.aclose()


def test_one_provider_across_event_loops_and_threads(server: LoopbackServer) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import trio

    provider = OpenAIProvider(config_for(server, max_retries=0))

    async def call(i: int) -> str:
        try:
            return await provider.generate(f"q{i}")
        finally:
            await provider.aclose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda i: asyncio.run(call(i)), range(8)))
    assert answers == [f"OpenAI emulator: q{i}" for i in range(8)]
    assert trio.run(call, 9) == "OpenAI emulator: q9"
    assert asyncio.run(provider.generate("again")) == "OpenAI emulator: again"


def _sse_server(body: str, loopback_server):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def chat(request) -> Response:
        return Response(body.encode(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    return loopback_server(app)


async def test_yandex_style_stream(loopback_server) -> None:
    """Yandex's /v1: bare UUID ids, the text in the same chunk as finish_reason, no usage
    chunk; and CRLF line ends, comments and event fields, which SSE allows."""
    body = (
        ": keep-alive\r\n\r\n"
        'event: message\r\ndata: {"id":"50f5b87a","object":"chat.completion.chunk",'
        '"choices":[{"index":0,"delta":{"role":"assistant","content":"The"}}]}\r\n\r\n'
        'data: {"id":"50f5b87a","choices":[{"index":0,"delta":{"content":" result is -5."},'
        '"finish_reason":"stop"}]}\r\n\r\n'
        "data: [DONE]\r\n\r\n"
    )
    server = _sse_server(body, loopback_server)
    provider = OpenAIProvider(
        OpenAIConfig.yandex("b1g", "AQVN-test-0000", base_url=f"{server.base_url}/v1")
    )
    chunks = [c async for c in provider.stream(HI)]
    assert [c.delta for c in chunks] == ["The", " result is -5."]
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is None
    await provider.aclose()


async def test_done_without_finish_reason_ends_cleanly(loopback_server) -> None:
    body = 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    server = _sse_server(body, loopback_server)
    provider = OpenAIProvider(OpenAIConfig(base_url=f"{server.base_url}/v1"))
    chunks = [c async for c in provider.stream(HI)]
    assert [(c.delta, c.finish_reason) for c in chunks] == [("hi", None), ("", "stop")]
    await provider.aclose()


async def test_event_without_choices_is_malformed(loopback_server) -> None:
    server = _sse_server('data: {"id": "x"}\n\ndata: [DONE]\n\n', loopback_server)
    provider = OpenAIProvider(OpenAIConfig(base_url=f"{server.base_url}/v1", max_retries=0))
    with pytest.raises(StreamError, match="without choices"):
        async for _ in provider.stream(HI):
            pass
    await provider.aclose()


async def test_a_per_request_model_reaches_the_wire(make_provider: Make, emulator) -> None:
    provider = make_provider()
    params = GenerationParams(model="gpt-4o")
    completion = await provider.chat(HI, params)
    assert emulator.requests[-1].json()["model"] == "gpt-4o" == completion.model
    chunks = [c async for c in provider.stream(HI, params)]
    assert emulator.requests[-1].json()["model"] == "gpt-4o" == chunks[-1].model
    await provider.chat(HI)
    assert emulator.requests[-1].json()["model"] == "gpt-4o-mini"
    await provider.aclose()
