"""One router over all four vendor plugins — GigaChat, YandexGPT, an OpenAI-compatible server
and Ollama — each behind its own emulator on a real loopback socket: failover walks across
every vendor, for calls and for streams, and every failure is reported with its own typed
error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from orchestrator import AllProvidersFailedError, Message, Router
from orchestrator.errors import (
    ModelNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from orchestrator.health import BreakerConfig
from orchestrator.testing import LoopbackServer
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import GigaChatEmulator
from orchestrator_gigachat.emulator import config_for as gigachat_config
from orchestrator_ollama import OllamaProvider
from orchestrator_ollama.emulator import OllamaEmulator
from orchestrator_ollama.emulator import config_for as ollama_config
from orchestrator_openai import OpenAIProvider
from orchestrator_openai.emulator import OpenAIEmulator
from orchestrator_openai.emulator import config_for as openai_config
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import YandexGPTEmulator
from orchestrator_yandexgpt.emulator import config_for as yandex_config

pytestmark = pytest.mark.anyio
ORDER = ["gigachat", "yandexgpt", "openai", "ollama"]


@pytest.fixture
def servers() -> Iterator[dict[str, LoopbackServer]]:
    with (
        LoopbackServer(GigaChatEmulator()) as giga,
        LoopbackServer(YandexGPTEmulator()) as ya,
        LoopbackServer(OpenAIEmulator()) as oai,
        LoopbackServer(OllamaEmulator()) as local,
    ):
        yield {"gigachat": giga, "yandexgpt": ya, "openai": oai, "ollama": local}


def four_vendor_router(servers: dict[str, LoopbackServer]) -> Router:
    # Breakers that never open here: every failure below must be an attempt, not a skip.
    router = Router(strategy="first-available", breaker=BreakerConfig(consecutive_failures=50))
    router.add_provider(GigaChatProvider(gigachat_config(servers["gigachat"], max_retries=0)))
    router.add_provider(YandexGPTProvider(yandex_config(servers["yandexgpt"], max_retries=0)))
    router.add_provider(OpenAIProvider(openai_config(servers["openai"], max_retries=0)))
    router.add_provider(OllamaProvider(ollama_config(servers["ollama"], max_retries=0)))
    return router


async def test_failover_walks_across_all_four_vendors(servers: dict[str, LoopbackServer]) -> None:
    apps = {name: server.app for name, server in servers.items()}
    router = four_vendor_router(servers)
    with anyio.fail_after(30):
        # Each step takes one more vendor down; the next one in line answers, in its own words.
        for down in range(len(ORDER)):
            for name in ORDER[:down]:
                apps[name].fail_next(503)
            completion = await router.chat("Hello")
            assert completion.provider == ORDER[down]
            assert completion.text.endswith("Hello")
            assert completion.usage is not None and completion.usage.total_tokens > 0

        # Streams fail over the same way before their first chunk: three vendors refuse,
        # Ollama streams the whole answer, ending with its finish reason and usage.
        apps["gigachat"].fail_next(429, retry_after=30)
        apps["yandexgpt"].fail_next(503)
        apps["openai"].fail_next(500)
        chunks = [chunk async for chunk in router.chat_stream("Stream it")]
        assert {c.provider for c in chunks} == {"ollama"}
        assert "".join(c.delta for c in chunks) == "Ollama emulator: Stream it"
        assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None

        # All four down, each in its own way: one error naming every attempt, typed.
        # GigaChat's 429 above still holds it off for 30 s: the router skips it now.
        apps["yandexgpt"].outage = True
        apps["openai"].fail_next(429, retry_after=60)
        apps["ollama"].fail_next(404, message="model 'llama3.2' not found")
        with pytest.raises(AllProvidersFailedError) as info:
            await router.chat("Hello")
    errors = {attempt.provider: attempt.error for attempt in info.value.attempts}
    assert list(errors) == ORDER
    assert isinstance(errors["gigachat"], RateLimitError)  # held off by its Retry-After
    assert [a.skipped for a in info.value.attempts] == [True, False, False, False]
    assert isinstance(errors["yandexgpt"], ServiceUnavailableError)
    assert isinstance(errors["openai"], RateLimitError)
    assert isinstance(errors["ollama"], ModelNotFoundError)
    assert "ollama pull" in str(errors["ollama"])
    await router.aclose()


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"+8 in {city}"


async def test_tool_calls_fail_over_across_all_four_vendors(
    servers: dict[str, LoopbackServer],
) -> None:
    """A tools request walks the same way: a vendor down, a vendor whose model calls a tool
    the request did not offer, one that sends arguments off the schema - and the fourth
    answers with a whole, checked call; the result goes back through the same router."""
    apps: dict[str, Any] = {name: server.app for name, server in servers.items()}
    router = four_vendor_router(servers)
    params = {"tools": [get_weather]}
    apps["gigachat"].fail_next(503)
    apps["yandexgpt"].call_tools_next(("delete_everything", {}))
    apps["openai"].call_tools_next(("get_weather", {"town": "Kazan"}))
    apps["ollama"].call_tools_next(("get_weather", {"city": "Kazan"}))
    with anyio.fail_after(30):
        first = await router.chat("Weather in Kazan?", params)
        assert first.provider == "ollama"
        (call,) = first.tool_calls
        assert dict(call.arguments) == {"city": "Kazan"}
        history = [
            Message("user", "Weather in Kazan?"),
            Message("assistant", first.text, first.tool_calls),
            Message.tool_result(call, get_weather(**call.arguments)),
        ]
        apps["gigachat"].reply_next("It is +8 in Kazan.")
        final = await router.chat(history, params)
    assert (final.provider, final.text) == ("gigachat", "It is +8 in Kazan.")
    await router.aclose()
