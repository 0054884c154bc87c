"""Native asyncio cancellation of GigaChat calls never costs a pooled connection
(issue 11, defect 1; the mechanism is in ``orchestrator.providers._transport``).

Chat and stream calls are cancelled with ``asyncio.wait_for``, ``asyncio.timeout`` and
``Task.cancel`` at each point of their life, against the emulator on loopback, over a pool
of two connections, more times than the pool has connections; then the pool holds no busy
connection and no queued request, and the next call succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpcore
import httpx
import pytest

from orchestrator import Router
from orchestrator.providers._transport import pool_of
from orchestrator.testing import LoopbackServer
from orchestrator.types import Message
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import GigaChatEmulator, config_for

pytestmark = pytest.mark.anyio
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

ROUNDS = 5
HELLO = [Message("user", "Hello")]


@pytest.fixture
def served(
    emulator: GigaChatEmulator, server: LoopbackServer
) -> tuple[GigaChatEmulator, LoopbackServer]:
    """The module's emulator (reset for each test) and its server."""
    return emulator, server


@pytest.fixture
def provider(served: tuple[GigaChatEmulator, LoopbackServer]) -> GigaChatProvider:
    _, server = served
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=2))
    return GigaChatProvider(config_for(server, max_retries=0), transport=transport)


def pool(provider: GigaChatProvider) -> httpcore.AsyncConnectionPool:
    found = pool_of(provider.http_client()._transport)
    assert found is not None
    return found


def assert_pool_idle(provider: GigaChatProvider) -> None:
    state = pool(provider)
    assert state._requests == []
    assert [c for c in state.connections if not (c.is_idle() or c.is_closed())] == [], state


async def chat(provider: GigaChatProvider) -> str:
    return (await provider.chat(HELLO)).text


async def stream(provider: GigaChatProvider) -> str:
    return "".join([chunk.delta async for chunk in provider.stream(HELLO)])


CALLS = pytest.mark.parametrize("call", [chat, stream], ids=["chat", "stream"])
Call = Callable[[GigaChatProvider], Awaitable[str]]


async def cancel_natively(call: Awaitable[object], how: str, after: float = 0.1) -> None:
    async def guarded() -> object:
        if how == "timeout":
            async with asyncio.timeout(after):
                return await call
        return await call

    task = asyncio.ensure_future(guarded())
    if how == "wait_for":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(task, after)  # noqa: TID251 - the native API under test
    elif how == "cancel":
        await anyio.sleep(after)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises(TimeoutError):
            await task


class CancelAfterConnect(httpcore.AsyncNetworkBackend):
    """Connects, then cancels the task natively: due at its next await."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(*args, **kwargs)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        return stream

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def next_call_succeeds(provider: GigaChatProvider, call: Call) -> None:
    assert_pool_idle(provider)
    with anyio.fail_after(10):  # a leaked pool would wait for a slot forever
        assert await call(provider) == "GigaChat emulator: Hello"


@asyncio_only
@CALLS
@pytest.mark.parametrize("how", ["wait_for", "timeout", "cancel"])
async def test_cancelled_while_waiting_for_headers(
    served: tuple[GigaChatEmulator, LoopbackServer],
    provider: GigaChatProvider,
    call: Call,
    how: str,
) -> None:
    app, _ = served
    await call(provider)  # credentials fetched: the cancellations hit the API call
    app.latency = 30
    for _ in range(ROUNDS):
        await cancel_natively(call(provider), how)
    app.latency = 0
    await next_call_succeeds(provider, call)
    await provider.aclose()


@asyncio_only
@pytest.mark.parametrize("how", ["wait_for", "timeout", "cancel"])
async def test_cancelled_mid_stream(
    served: tuple[GigaChatEmulator, LoopbackServer], provider: GigaChatProvider, how: str
) -> None:
    app, _ = served
    await stream(provider)
    app.chunk_delay = 30
    for _ in range(ROUNDS):
        chunks: list[str] = []

        async def part_read(chunks: list[str] = chunks) -> None:
            async for chunk in provider.stream(HELLO):
                chunks.append(chunk.delta)

        await cancel_natively(part_read(), how, after=1.0)  # the first chunk comes at once
        assert chunks  # the cancellation landed mid-body
    app.chunk_delay = 0
    await next_call_succeeds(provider, stream)
    await provider.aclose()


@asyncio_only
@CALLS
async def test_cancelled_as_the_connection_is_made(provider: GigaChatProvider, call: Call) -> None:
    state = pool(provider)
    real = state._network_backend
    state._network_backend = CancelAfterConnect(real)
    for _ in range(ROUNDS):
        task = asyncio.ensure_future(call(provider))
        with pytest.raises(asyncio.CancelledError):
            await task
    state._network_backend = real
    await next_call_succeeds(provider, call)
    await provider.aclose()


@asyncio_only
@CALLS
async def test_cancelled_while_waiting_for_a_pool_slot(
    served: tuple[GigaChatEmulator, LoopbackServer], provider: GigaChatProvider, call: Call
) -> None:
    app, _ = served
    await call(provider)
    state = pool(provider)
    app.chunk_delay = 30
    for _ in range(ROUNDS):
        holders: list[AsyncIterator[Any]] = []
        for _ in range(2):  # both connections busy with a stream each
            holder = provider.stream(HELLO)
            await holder.__anext__()
            holders.append(holder)
        waiter = asyncio.ensure_future(call(provider))
        while not any(request.is_queued() for request in state._requests):
            await anyio.sleep(0)
        await holders[0].aclose()  # type: ignore[attr-defined]
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await holders[1].aclose()  # type: ignore[attr-defined]
    app.chunk_delay = 0
    await next_call_succeeds(provider, call)
    await provider.aclose()


@asyncio_only
async def test_router_over_native_cancellation(
    served: tuple[GigaChatEmulator, LoopbackServer], provider: GigaChatProvider
) -> None:
    app, _ = served
    router = Router()
    router.add_provider(provider)
    app.latency = 30  # first waiting for headers (which also closes the connections)...
    for _ in range(ROUNDS):
        await cancel_natively(router.route("x"), "wait_for")
    app.latency = 0
    state = pool(provider)
    real = state._network_backend
    state._network_backend = CancelAfterConnect(real)  # ...then as each new one is made
    for _ in range(ROUNDS):
        task = asyncio.ensure_future(router.route("x"))
        with pytest.raises(asyncio.CancelledError):
            await task
    state._network_backend = real
    assert_pool_idle(provider)
    with anyio.fail_after(10):
        assert await router.route("x")
    await provider.aclose()
