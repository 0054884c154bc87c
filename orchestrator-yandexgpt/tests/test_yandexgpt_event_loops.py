"""One provider used from many event loops: asyncio.run per call, threads, trio then asyncio.

The HTTP client is per loop (``http_client()``), the IAM token cache is shared by all loops
and its lock is per loop (``loop_lock``). Connections go back to zero after ``aclose()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
import trio

from orchestrator.testing import LoopbackServer
from orchestrator.types import Message
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import YandexGPTEmulator, config_for

HI = [Message("user", "hi")]


@pytest.fixture
def served() -> Iterator[LoopbackServer]:
    with LoopbackServer(YandexGPTEmulator()) as server:
        yield server


def make(server: LoopbackServer, **overrides: Any) -> YandexGPTProvider:
    return YandexGPTProvider(config_for(server, **overrides), environ={})


async def one_call(provider: YandexGPTProvider) -> str:
    text = (await provider.chat(HI)).text
    streamed = "".join([c.delta async for c in provider.stream(HI)])
    assert streamed == text
    await provider.aclose()
    return text


def wait_for_no_connections(server: LoopbackServer) -> None:
    async def wait() -> None:
        with anyio.fail_after(5):
            while server.open_connections:
                await anyio.sleep(0.01)

    anyio.run(wait)


@pytest.mark.parametrize("auth", ["api_key", "oauth"])
def test_twenty_calls_over_five_threads(served: LoopbackServer, auth: str) -> None:
    emulator: YandexGPTEmulator = served.app
    extra = {"oauth_token": emulator.oauth_token} if auth == "oauth" else {}
    provider = make(served, **extra)
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(lambda _: asyncio.run(one_call(provider)), range(20)))
    assert results == ["Echo: hi"] * 20
    assert emulator.request_count == 40
    if auth == "oauth":
        # Shared cache: at most one exchange per concurrently starting loop, not per call.
        assert 1 <= emulator.iam_request_count <= 5
    wait_for_no_connections(served)


def test_ten_sequential_asyncio_runs_share_the_token(served: LoopbackServer) -> None:
    emulator: YandexGPTEmulator = served.app
    provider = make(served, oauth_token=emulator.oauth_token)
    for _ in range(10):
        assert asyncio.run(one_call(provider)) == "Echo: hi"
    assert emulator.iam_request_count == 1
    wait_for_no_connections(served)


def test_trio_then_asyncio_on_the_same_provider(served: LoopbackServer) -> None:
    emulator: YandexGPTEmulator = served.app
    provider = make(served, oauth_token=emulator.oauth_token)
    assert trio.run(one_call, provider) == "Echo: hi"
    assert asyncio.run(one_call(provider)) == "Echo: hi"
    assert trio.run(one_call, provider) == "Echo: hi"
    assert emulator.iam_request_count == 1
    wait_for_no_connections(served)


def test_clients_and_locks_are_per_loop(served: LoopbackServer) -> None:
    provider = make(served)

    async def identities() -> tuple[object, object]:
        client = provider.http_client()
        assert provider.http_client() is client  # one pooled client per loop
        lock = provider.loop_lock("yandexgpt-iam")
        assert provider.loop_lock("yandexgpt-iam") is lock
        await provider.chat(HI)
        await provider.aclose()
        return client, lock  # the objects, not id()s: a freed object's id can be reused

    first_client, first_lock = asyncio.run(identities())
    second_client, second_lock = trio.run(identities)
    assert second_client is not first_client
    assert second_lock is not first_lock


def test_connections_return_to_zero_after_aclose(served: LoopbackServer) -> None:
    provider = make(served)

    async def main() -> int:
        for _ in range(3):
            await provider.chat(HI)
        async for _ in provider.stream(HI):
            pass
        await provider.chat(HI)
        opened = served.open_connections
        await provider.aclose()
        return opened

    assert asyncio.run(main()) >= 1  # the pool kept its connection until aclose()
    wait_for_no_connections(served)
