"""One provider across event loops and threads (issue 8), against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import trio

from orchestrator.testing import LoopbackServer
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import GigaChatEmulator, config_for


@pytest.fixture
def served() -> Iterator[tuple[GigaChatEmulator, LoopbackServer]]:
    app = GigaChatEmulator()
    with LoopbackServer(app) as server:
        yield app, server


def test_twenty_calls_from_five_threads(served, wait_until: Callable[..., bool]) -> None:
    app, server = served
    provider = GigaChatProvider(config_for(server, max_retries=0))

    async def call(i: int) -> str:
        try:
            return await provider.generate(f"question {i}")
        finally:
            await provider.aclose()

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda i: asyncio.run(call(i)), range(20)))
    assert answers == [f"GigaChat emulator: question {i}" for i in range(20)]
    assert app.request_count == 20
    # The token is shared by every loop; refreshes are single-flight per loop only.
    assert 1 <= app.oauth_count <= 5
    assert wait_until(lambda: server.open_connections == 0)


def test_ten_sequential_asyncio_runs_share_the_token(served, wait_until) -> None:
    app, server = served
    provider = GigaChatProvider(config_for(server, max_retries=0))
    for i in range(10):
        assert asyncio.run(provider.generate(f"q{i}")) == f"GigaChat emulator: q{i}"
    assert app.oauth_count == 1
    assert app.request_count == 10
    # Each ended loop closed its client: no connection is left open.
    assert wait_until(lambda: server.open_connections == 0)


def test_trio_then_asyncio_on_the_same_provider(served, wait_until) -> None:
    app, server = served
    provider = GigaChatProvider(config_for(server, max_retries=0))

    async def both() -> tuple[str, list[str]]:
        text = await provider.generate("trio")
        chunks = [c.delta async for c in provider.stream([{"role": "user", "content": "s"}])]  # type: ignore[list-item]
        await provider.aclose()
        return text, chunks

    text, chunks = trio.run(both)
    assert text == "GigaChat emulator: trio"
    assert "".join(chunks) == "GigaChat emulator: s"
    assert asyncio.run(provider.generate("asyncio")) == "GigaChat emulator: asyncio"
    assert app.oauth_count == 1
    assert wait_until(lambda: server.open_connections == 0)


def test_connections_back_to_zero_after_aclose(served, wait_until) -> None:
    _, server = served
    provider = GigaChatProvider(config_for(server, max_retries=0))

    async def main() -> int:
        for _ in range(3):
            await provider.generate("x")
        opened = server.open_connections
        await provider.aclose()
        return opened

    assert asyncio.run(main()) >= 1
    assert wait_until(lambda: server.open_connections == 0)


def test_one_http_client_per_loop_reused(served) -> None:
    _, server = served
    provider = GigaChatProvider(config_for(server, max_retries=0))

    async def main() -> bool:
        first = provider.http_client()
        await provider.generate("a")  # the OAuth call goes through the same client
        await provider.generate("b")
        same = provider.http_client() is first
        await provider.aclose()
        return same

    assert asyncio.run(main())
