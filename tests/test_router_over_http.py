"""Router behaviour that needs real vendor traffic: hedging and cancellation release the
losing call's connection, and failover between the two vendor plugins over their emulators."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import anyio
import pytest

from orchestrator import Router, StreamInterruptedError
from orchestrator.testing import LoopbackServer
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import GigaChatEmulator
from orchestrator_gigachat.emulator import config_for as gigachat_config
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import YandexGPTEmulator
from orchestrator_yandexgpt.emulator import config_for as yandex_config

pytestmark = pytest.mark.anyio


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    until = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def servers() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    with LoopbackServer(GigaChatEmulator()) as giga, LoopbackServer(YandexGPTEmulator()) as ya:
        yield giga, ya


async def test_hedge_cancels_the_slow_vendor_and_releases_its_connection(
    servers: tuple[LoopbackServer, LoopbackServer],
) -> None:
    giga, ya = servers
    giga.app.latency = 30  # GigaChat hangs; the hedge goes to YandexGPT after 0.1 s
    router = Router(strategy="first-available", hedge_after=0.1)
    slow = GigaChatProvider(gigachat_config(giga, max_retries=0))
    fast = YandexGPTProvider(yandex_config(ya, max_retries=0))
    router.add_provider(slow)
    router.add_provider(fast)
    with anyio.fail_after(10):
        completion = await router.chat("Hello")
    assert completion.provider == "yandexgpt"
    # The losing request was cancelled, which closes its connection: the server sees it go
    # without anyone calling aclose().
    assert eventually(lambda: giga.open_connections == 0)
    await router.aclose()
    assert eventually(lambda: ya.open_connections == 0)


async def test_failover_between_vendors_and_a_cut_stream_is_never_mixed(
    servers: tuple[LoopbackServer, LoopbackServer],
) -> None:
    giga, ya = servers
    router = Router(strategy="first-available")
    router.add_provider(GigaChatProvider(gigachat_config(giga, max_retries=0)))
    router.add_provider(YandexGPTProvider(yandex_config(ya, max_retries=0)))
    giga.app.fail_next(503)
    assert (await router.chat("Hello")).provider == "yandexgpt"
    giga.app.cut_next_stream(after_chunks=1)
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for text in router.route_stream("Tell me a story about routers"):
            received.append(text)
    assert info.value.provider == "gigachat"
    assert info.value.partial_text == "".join(received)
    expected = (await router.chat("Tell me a story about routers", provider="gigachat")).text
    assert expected.startswith("".join(received))  # only GigaChat's own text was delivered
    await router.aclose()


async def test_stream_hedge_over_http_releases_the_losing_connection(
    servers: tuple[LoopbackServer, LoopbackServer],
) -> None:
    giga, ya = servers
    ya.app.latency = 30  # YandexGPT hangs before its first line; GigaChat answers
    router = Router(strategy="first-available", hedge_after=0.1)
    router.add_provider(YandexGPTProvider(yandex_config(ya, max_retries=0)))
    router.add_provider(GigaChatProvider(gigachat_config(giga, max_retries=0)))
    with anyio.fail_after(10):
        chunks = [c async for c in router.chat_stream("Hello there")]
    assert {c.provider for c in chunks} == {"gigachat"}
    assert chunks[-1].finish_reason == "stop"
    assert eventually(lambda: ya.open_connections == 0)
    await router.aclose()
