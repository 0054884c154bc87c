"""Tests of what is particular to this provider (the contract is in test_contract.py):
{{ cookiecutter.provider_name }}."""

import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from orchestrator import GenerationParams, Message, ProviderConfig, Tool
from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ProviderError,
    QuotaExceededError,
    ServiceUnavailableError,
    StreamError,
)
from orchestrator.testing import FakeOpenAIServer, LoopbackServer

from {{ cookiecutter.import_name }} import (
    {{ cookiecutter.class_name }},
)
from {{ cookiecutter.import_name }}.provider import (
    API_KEY_ENV,
    BASE_URL_ENV,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_provider(
    server: LoopbackServer,
    **settings: Any,
) -> {{ cookiecutter.class_name }}:
    assert isinstance(server.app, FakeOpenAIServer)
    config = ProviderConfig(
        name="{{ cookiecutter.provider_slug }}",
        api_key=server.app.api_key,
        base_url=f"{server.base_url}/v1",
        **settings,
    )
    return {{ cookiecutter.class_name }}(config)


def failed(status: int, body: Any, **headers: str) -> ProviderError:
    """The provider's error for an answer with ``status``, JSON ``body`` and ``headers``."""
    config = ProviderConfig(
        name="{{ cookiecutter.provider_slug }}",
        api_key="sk-test-0001",
    )
    provider = {{ cookiecutter.class_name }}(config)
    return provider._error(httpx.Response(status, json=body, headers=headers))


async def test_params_and_model_are_sent(fake_openai_server: LoopbackServer) -> None:
    app = fake_openai_server.app
    assert isinstance(app, FakeOpenAIServer)
    params = GenerationParams(temperature=0.2, max_tokens=50, top_p=0.9, stop=["\n\n"])
    async with make_provider(fake_openai_server) as provider:
        await provider.generate("Hi", params)
    body = app.requests[-1].body
    assert body["model"] == {{ cookiecutter.class_name }}.DEFAULT_MODEL
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["stop"]) == (
        0.2,
        50,
        0.9,
        ["\n\n"],
    )


async def test_missing_api_key_fails_before_any_request(
    fake_openai_server: LoopbackServer,
) -> None:
    config = ProviderConfig(
        name="{{ cookiecutter.provider_slug }}",
        base_url=fake_openai_server.base_url,
    )
    provider = {{ cookiecutter.class_name }}(config)
    with pytest.raises(AuthenticationError, match="api_key"):
        await provider.generate("Hi")
    assert fake_openai_server.app.request_count == 0


async def test_unicode_line_breaks_inside_streamed_json(
    loopback_server: Callable[..., LoopbackServer],
) -> None:
    """U+2028, U+2029 and U+0085 sent raw inside an event's JSON string (as servers whose
    encoder does not escape them do) are text, not line ends."""
    text = "one\u2028two\x85three \u2029 end"
    server = loopback_server(FakeOpenAIServer(reply=text, ensure_ascii=False))
    async with make_provider(server) as provider:
        chunks = [chunk async for chunk in provider.stream([Message("user", "Hi")])]
    assert "".join(chunk.delta for chunk in chunks) == text
    assert chunks[-1].finish_reason == "stop"


async def test_x_should_retry_overrides_the_status(
    fake_openai_server: LoopbackServer,
) -> None:
    """As in OpenAI's SDK: ``x-should-retry: false`` stops retries of a 503, ``true``
    retries even a 400."""
    app = fake_openai_server.app
    assert isinstance(app, FakeOpenAIServer)
    app.fail_next(503, headers={"x-should-retry": "false"})
    async with make_provider(fake_openai_server, max_retries=2) as provider:
        with pytest.raises(ServiceUnavailableError) as info:
            await provider.generate("Hi")
        assert not info.value.transient
        assert app.request_count == 1
        app.fail_next(400, headers={"x-should-retry": "true"})
        assert await provider.generate("Hi") == "Echo: Hi"
    assert app.request_count == 3


async def test_retry_after_as_an_http_date(fake_openai_server: LoopbackServer) -> None:
    """``Retry-After: <HTTP date>``: a past date is retried at once, one an hour away is
    not waited out (longer than backoff_max): the error carries it for the router."""
    app = fake_openai_server.app
    assert isinstance(app, FakeOpenAIServer)
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    app.fail_next(503, headers={"Retry-After": past})
    async with make_provider(fake_openai_server, max_retries=1) as provider:
        assert await provider.generate("Hi") == "Echo: Hi"
        assert app.request_count == 2
        app.fail_next(429, headers={"Retry-After": later})
        with pytest.raises(ProviderError) as info:
            await provider.generate("Hi")
    assert info.value.retry_after is not None
    assert info.value.retry_after > 3000
    assert app.request_count == 3


def test_error_codes_and_body_shapes() -> None:
    quota = failed(429, {"error": {"message": "No credit", "code": "insufficient_quota"}})
    assert isinstance(quota, QuotaExceededError)
    assert not quota.transient
    assert "No credit" in str(quota)
    long = failed(400, {"error": {"message": "Too long", "code": "context_length_exceeded"}})
    assert isinstance(long, ContextLengthError)
    assert "Bad field" in str(failed(422, {"detail": "Bad field"}))  # FastAPI, vLLM
    assert "Overloaded" in str(failed(503, {"error": "Overloaded"}))
    assert failed(409, {"error": {"message": "Locked"}}).transient  # as the SDK retries it


async def test_a_stream_answered_without_events_is_an_error() -> None:
    """A server that ignores "stream": true and answers JSON: a clear StreamError, not
    "truncated"."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": []})

    config = ProviderConfig(
        name="{{ cookiecutter.provider_slug }}",
        api_key="sk-test-0001",
    )
    transport = httpx.MockTransport(answer)
    provider = {{ cookiecutter.class_name }}(config, transport=transport)
    async with provider:
        with pytest.raises(StreamError, match="not server-sent events"):
            async for _ in provider.stream([Message("user", "Hi")]):
                pass


async def test_capabilities_that_are_off_are_refused_not_dropped(
    fake_openai_server: LoopbackServer,
) -> None:
    tool = Tool("get_weather", "Weather in a city", {"type": "object", "properties": {}})
    async with make_provider(fake_openai_server) as provider:
        with pytest.raises(InvalidRequestError, match="supports_tools"):
            await provider.generate("Hi", GenerationParams(tools=[tool]))
    assert fake_openai_server.app.request_count == 0


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert {{ cookiecutter.class_name }}.config_from_env("x") is None
    monkeypatch.setenv(API_KEY_ENV, "sk-from-env-0001")
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:8000/v1")
    config = {{ cookiecutter.class_name }}.config_from_env(
        "{{ cookiecutter.provider_slug }}",
    )
    assert config is not None
    assert config.api_key == "sk-from-env-0001"
    assert config.base_url == "http://127.0.0.1:8000/v1"


def test_tls_verification_off_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = ProviderConfig(
        name="{{ cookiecutter.provider_slug }}",
        api_key="sk-test-0001",
        verify_ssl=False,
    )
    with caplog.at_level(logging.WARNING):
        {{ cookiecutter.class_name }}(config)
    assert "verification is OFF" in caplog.text
