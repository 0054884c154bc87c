"""The Ollama provider against its emulator: payloads, streams, errors, models, config."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from orchestrator import Router
from orchestrator.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    TransportError,
)
from orchestrator.plugins import PluginRegistry
from orchestrator.providers import ProviderConfig
from orchestrator.testing import LoopbackServer
from orchestrator.types import GenerationParams, Message
from orchestrator_ollama import OllamaConfig, OllamaProvider
from orchestrator_ollama.emulator import (
    BreakStream,
    ErrorLine,
    MalformedLine,
    OllamaEmulator,
    config_for,
)

pytestmark = pytest.mark.anyio
Make = Callable[..., OllamaProvider]
HI = [Message("user", "hi there")]


async def test_chat_payload_and_completion(make_provider: Make, emulator) -> None:
    provider = make_provider(seed=42, num_ctx=4096, keep_alive="5m")
    params = GenerationParams(temperature=0.0, top_p=0.5, max_tokens=64, stop=["END"])
    completion = await provider.chat([Message("system", "be brief"), *HI], params)
    assert completion.text == "Ollama emulator: hi there"
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5
    assert completion.extra["done_reason"] == "stop"
    assert completion.extra["eval_duration"] == 4_799_921_000
    assert emulator.requests[-1].json() == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi there"},
        ],
        "stream": False,
        "options": {
            "temperature": 0.0,
            "top_p": 0.5,
            "num_predict": 64,
            "stop": ["END"],
            "seed": 42,
            "num_ctx": 4096,
        },
        "keep_alive": "5m",
    }
    headers = emulator.requests[-1].headers
    assert "authorization" not in headers
    assert headers["user-agent"].startswith("orchestrator-ollama/")
    await provider.aclose()


async def test_num_predict_length(make_provider: Make) -> None:
    provider = make_provider()
    completion = await provider.chat(HI, GenerationParams(max_tokens=1))
    assert (completion.text, completion.finish_reason) == ("Ollama", "length")
    chunks = [c async for c in provider.stream(HI, GenerationParams(max_tokens=1))]
    assert "".join(c.delta for c in chunks) == "Ollama"
    assert chunks[-1].finish_reason == "length"
    await provider.aclose()


async def test_stream_usage_on_the_done_line(make_provider: Make, emulator) -> None:
    provider = make_provider()
    chunks = [c async for c in provider.stream(HI)]
    assert "".join(c.delta for c in chunks) == "Ollama emulator: hi there"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert emulator.requests[-1].json()["stream"] is True
    await provider.aclose()


@pytest.mark.parametrize(
    ("fault", "error", "match"),
    [
        (MalformedLine(after_chunks=1), StreamError, "not JSON"),
        (ErrorLine(after_chunks=1), StreamError, "error was encountered"),
        (
            ErrorLine(after_chunks=0, message="model 'x' not found"),
            ModelNotFoundError,
            "ollama pull",
        ),
        (BreakStream(after_chunks=1), StreamError, "broke|truncated"),
    ],
)
async def test_broken_streams(make_provider: Make, emulator, fault, error, match, caplog) -> None:
    caplog.set_level(logging.CRITICAL, logger="uvicorn.error")
    emulator.script(fault)
    provider = make_provider()
    with pytest.raises(error, match=match):
        async for _ in provider.stream([Message("user", "a b c d")]):
            pass
    await provider.aclose()


async def test_model_not_found_names_ollama_pull(make_provider: Make) -> None:
    provider = make_provider(model="mistral")
    with pytest.raises(ModelNotFoundError) as info:
        await provider.chat(HI)
    assert "model 'mistral' not found" in str(info.value)
    assert "ollama pull mistral" in str(info.value)
    assert info.value.status_code == 404 and not info.value.transient
    with pytest.raises(ModelNotFoundError, match="ollama pull mistral"):
        async for _ in provider.stream(HI):
            pass
    await provider.aclose()


@pytest.mark.parametrize(
    ("status", "message", "expected", "transient"),
    [
        (400, "invalid options", InvalidRequestError, False),
        (401, "unauthorized", AuthenticationError, False),
        (403, "forbidden", PermissionDeniedError, False),
        (404, "404 page not found", InvalidRequestError, False),
        (404, 'model "phi3" not found, try pulling it first', ModelNotFoundError, False),
        (429, "too many requests", RateLimitError, True),
        (500, "llama runner process has terminated", ServiceUnavailableError, True),
        (502, "cloud model unreachable", ServiceUnavailableError, True),
    ],
)
async def test_status_mapping(
    make_provider: Make, emulator, status, message, expected, transient
) -> None:
    emulator.fail_next(status, message=message, retry_after=1 if status == 429 else None)
    provider = make_provider()
    with pytest.raises(ProviderError) as info:
        await provider.chat(HI)
    assert type(info.value) is expected
    assert info.value.transient is transient
    assert message in str(info.value)
    if status == 429:
        assert info.value.retry_after == 1
    await provider.aclose()


async def test_plain_text_errors_from_a_proxy(loopback_server) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def gateway(request) -> PlainTextResponse:
        return PlainTextResponse("<html>Bad   Gateway</html>", status_code=502)

    async def ok(request) -> PlainTextResponse:
        return PlainTextResponse("not json")

    app = Starlette(routes=[Route("/api/chat", gateway, methods=["POST"]), Route("/api/tags", ok)])
    server = loopback_server(app)
    provider = OllamaProvider(OllamaConfig(base_url=server.base_url, max_retries=0))
    with pytest.raises(ServiceUnavailableError, match="<html>Bad Gateway</html>"):
        await provider.chat(HI)
    with pytest.raises(ProviderError, match="not JSON"):
        await provider.list_models()
    await provider.aclose()


async def test_models_and_health(make_provider: Make, emulator) -> None:
    provider = make_provider()
    models = await provider.list_models()
    assert [m.name for m in models] == list(emulator.models)
    assert models[0].details["family"] == "llama"
    assert models[0].size and models[0].digest and models[0].modified_at
    assert await provider.health_check() is True
    emulator.outage = True
    assert await provider.health_check() is False
    await provider.aclose()


async def test_key_for_ollama_com(loopback_server) -> None:
    app = OllamaEmulator(api_key="ollama-com-key-000")
    server = loopback_server(app)
    provider = OllamaProvider(config_for(server, max_retries=0))
    assert (await provider.chat(HI)).text
    assert app.requests[-1].headers["authorization"] == "Bearer ollama-com-key-000"
    wrong = OllamaProvider(config_for(server, api_key="nope-key-0000", max_retries=0))
    with pytest.raises(AuthenticationError, match="OLLAMA_API_KEY"):
        await wrong.chat(HI)
    await provider.aclose()
    await wrong.aclose()


async def test_server_not_running(emulator) -> None:
    with LoopbackServer(emulator) as server:
        config = config_for(server, max_retries=0)
    provider = OllamaProvider(config)
    with pytest.raises(TransportError, match="ollama serve"):
        await provider.chat(HI)
    assert await provider.health_check() is False
    await provider.aclose()


async def test_router_fails_over_from_a_missing_model(server: LoopbackServer) -> None:
    router = Router(registry=PluginRegistry(entry_points=False))
    router.add_provider(OllamaProvider(config_for(server, name="big", model="llama3.3:70b")))
    router.add_provider(OllamaProvider(config_for(server, name="small", model="qwen2.5:0.5b")))
    async with router:
        completion = await router.chat(HI)
    assert completion.provider == "small"


def test_defaults_and_guide_style_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    provider = OllamaProvider(ProviderConfig(name="local"))
    assert provider.config.base_url == "http://127.0.0.1:11434"
    assert provider.config.model == "llama3.2"
    assert provider.config.timeout == 120
    blank = OllamaProvider(OllamaConfig(base_url=None, model=None))
    assert (blank.config.base_url, blank.config.model) == ("http://127.0.0.1:11434", "llama3.2")


def test_bad_ca_bundle(tmp_path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("nope")
    with pytest.raises(ConfigurationError, match="PEM"):
        OllamaProvider(OllamaConfig(ca_bundle_file=str(bogus)))


def test_verify_ssl_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    OllamaProvider(OllamaConfig(base_url="https://ollama.example", verify_ssl=False))
    assert "verification is OFF" in caplog.text


async def test_unicode_line_separators_inside_a_streamed_answer(make_provider: Make) -> None:
    # Raw U+2028 / U+0085 inside NDJSON lines (Go escapes the first, not the second).
    provider = make_provider()
    prompt = [Message("user", "one\u2028two\x85three \u2029 end")]
    streamed = "".join([c.delta async for c in provider.stream(prompt)])
    assert streamed == (await provider.chat(prompt)).text == f"Ollama emulator: {prompt[0].content}"
    await provider.aclose()


def test_one_provider_across_event_loops_and_threads(server: LoopbackServer) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import trio

    provider = OllamaProvider(config_for(server, max_retries=0))

    async def call(i: int) -> str:
        try:
            return await provider.generate(f"q{i}")
        finally:
            await provider.aclose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda i: asyncio.run(call(i)), range(8)))
    assert answers == [f"Ollama emulator: q{i}" for i in range(8)]
    assert trio.run(call, 9) == "Ollama emulator: q9"
    assert asyncio.run(provider.generate("again")) == "Ollama emulator: again"


async def test_a_per_request_model_reaches_the_wire(make_provider: Make, emulator) -> None:
    provider = make_provider()
    params = GenerationParams(model="qwen2.5:0.5b")
    completion = await provider.chat(HI, params)
    assert emulator.requests[-1].json()["model"] == "qwen2.5:0.5b" == completion.model
    chunks = [c async for c in provider.stream(HI, params)]
    assert emulator.requests[-1].json()["model"] == "qwen2.5:0.5b" == chunks[-1].model
    await provider.chat(HI)
    assert emulator.requests[-1].json()["model"] == "llama3.2"
    await provider.aclose()
