"""Native asyncio cancellation never costs a pooled connection (issue 11, defects 1 and 16).

``asyncio.wait_for``, ``asyncio.timeout`` and ``Task.cancel`` cancel differently from anyio's
scopes, and httpcore's pool was written for the latter (encode/httpcore#1093). Each test
cancels provider calls at one point of their life against a real loopback server, with a
pool of two connections, more times than the pool has connections, and then checks that the
pool holds no busy connection and no queued request and that the next call succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import anyio
import httpcore
import httpx
import pytest

from orchestrator import Router
from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig
from orchestrator.providers._transport import ProviderTransport, pool_of
from orchestrator.testing import LoopbackServer
from orchestrator.types import Chunk, Completion, Message

pytestmark = pytest.mark.anyio

#: Only asyncio cancels natively; these tests do not apply to trio.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

#: More cancellations than the pool has connections: each leaked one would be fatal.
ROUNDS = 6


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    prompt = json.loads(body or b'{"p": ""}').get("p", "")
    if prompt == "hang":  # the headers never come
        await anyio.sleep(60)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/stream":
        for word in ("one", "two"):
            await send({"type": "http.response.body", "body": word.encode(), "more_body": True})
        if prompt == "stall":  # the rest of the body never comes
            await anyio.sleep(60)
        await send({"type": "http.response.body", "body": b"end"})
        return
    data = json.dumps({"text": "echo " + prompt})
    await send({"type": "http.response.body", "body": data.encode()})


class EchoProvider(BaseProvider):
    """A direct BaseProvider over a two-connection pool: chat and a real stream."""

    def _create_http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.config.base_url or "",
            timeout=30,
            transport=self._transport or httpx.AsyncHTTPTransport(limits=LIMITS),
        )

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        response = await self.http_client().post("/chat", json={"p": prompt})
        return str(response.json()["text"])

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        return Completion(await self.generate(messages[-1].content), provider=self.name)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        request = self.http_client().build_request(
            "POST", "/stream", json={"p": messages[-1].content}
        )
        response = await self.http_client().send(request, stream=True)
        try:
            async for part in response.aiter_bytes():
                yield Chunk(delta=part.decode(), provider=self.name)
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def health_check(self) -> bool:
        return True


LIMITS = httpx.Limits(max_connections=2)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(app) as running:
        yield running


@pytest.fixture
def provider(server: LoopbackServer) -> EchoProvider:
    return EchoProvider(
        ProviderConfig(name="echo", base_url=server.base_url, max_retries=0, http_transport="httpx")
    )


def pool(provider: BaseProvider) -> httpcore.AsyncConnectionPool:
    found = pool_of(provider.http_client()._transport)
    assert found is not None
    return found


def assert_pool_idle(provider: BaseProvider) -> None:
    """No request queued or in flight, no connection busy (idle or closed only)."""
    state = pool(provider)
    assert state._requests == []
    busy = [c for c in state.connections if not (c.is_idle() or c.is_closed())]
    assert busy == [], state


class CancelAfterConnect(httpcore.AsyncNetworkBackend):
    """Connects, then cancels the connecting task natively: the cancellation is due at the
    next await, as when ``wait_for``'s timer fires while the connect completes."""

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


async def chat(provider: BaseProvider, prompt: str) -> str:
    return (await provider.chat([Message("user", prompt)])).text


async def stream(provider: BaseProvider, prompt: str) -> str:
    return "".join([chunk.delta async for chunk in provider.stream([Message("user", prompt)])])


async def cancelled(call: Awaitable[object], how: str) -> None:
    """Run ``call`` in its own task and cancel it natively, the way ``how`` says."""

    async def guarded() -> object:
        if how == "timeout":
            async with asyncio.timeout(0.05):
                return await call
        return await call

    task = asyncio.ensure_future(guarded())
    if how == "wait_for":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(task, 0.05)  # noqa: TID251 - the native API under test
        return
    if how == "cancel":
        await anyio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return
    with pytest.raises((TimeoutError, asyncio.CancelledError)):
        await task


HOW = ["wait_for", "timeout", "cancel"]


@asyncio_only
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("call", [chat, stream], ids=["chat", "stream"])
async def test_cancelled_while_waiting_for_headers(
    provider: EchoProvider, call: Callable[[BaseProvider, str], Awaitable[str]], how: str
) -> None:
    for _ in range(ROUNDS):
        await cancelled(call(provider, "hang"), how)
    assert_pool_idle(provider)
    assert await call(provider, "x") in ("echo x", "onetwoend")
    await provider.aclose()


@asyncio_only
@pytest.mark.parametrize("how", HOW)
async def test_cancelled_mid_body_of_a_stream(provider: EchoProvider, how: str) -> None:
    for _ in range(ROUNDS):
        await cancelled(stream(provider, "stall"), how)
    assert_pool_idle(provider)
    assert await stream(provider, "x") == "onetwoend"
    await provider.aclose()


@asyncio_only
@pytest.mark.parametrize("call", [chat, stream], ids=["chat", "stream"])
async def test_cancelled_as_the_connection_is_made(
    provider: EchoProvider, call: Callable[[BaseProvider, str], Awaitable[str]]
) -> None:
    """The cancellation lands right after connecting, in the cancel-shielded checkpoint of
    the new connection's state lock: httpcore leaves it NEW forever, taking a pool slot."""
    state = pool(provider)
    real = state._network_backend
    state._network_backend = CancelAfterConnect(real)
    for _ in range(ROUNDS):
        task = asyncio.ensure_future(call(provider, "x"))
        with pytest.raises(asyncio.CancelledError):
            await task
    state._network_backend = real
    assert_pool_idle(provider)
    with anyio.fail_after(10):  # a leaked pool waits for a slot forever
        assert await call(provider, "x") in ("echo x", "onetwoend")
    await provider.aclose()


@asyncio_only
@pytest.mark.parametrize("call", [chat, stream], ids=["chat", "stream"])
async def test_cancelled_while_waiting_for_a_pool_slot(
    provider: EchoProvider, call: Callable[[BaseProvider, str], Awaitable[str]]
) -> None:
    """Both connections are busy; a third call waits for one. Closing a busy stream part
    read closes its connection, and the pool makes a new one for the waiter and wakes it;
    the waiter is cancelled before it runs (encode/httpcore#1093). httpcore drops the
    request but keeps the new connection, CONNECTING forever."""
    client = provider.http_client()
    state = pool(provider)
    for _ in range(ROUNDS):
        holders = [
            await client.send(
                client.build_request("POST", "/stream", json={"p": "stall"}), stream=True
            )
            for _ in range(2)
        ]
        waiter = asyncio.ensure_future(call(provider, "x"))
        while not any(request.is_queued() for request in state._requests):
            await anyio.sleep(0)
        await holders[0].aclose()  # the pool hands the waiter a new connection...
        waiter.cancel()  # ...and the waiter is cancelled before it could use it
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await holders[1].aclose()
    assert_pool_idle(provider)
    with anyio.fail_after(10):
        assert await call(provider, "x") in ("echo x", "onetwoend")
    await provider.aclose()


@asyncio_only
async def test_random_native_cancellations_at_concurrency(provider: EchoProvider) -> None:
    """Many calls at four times the pool's size, each cancelled at a random moment (twice
    for some: a second cancellation can cut httpcore's own clean-up short)."""
    import random

    rng = random.Random(11)

    async def one(i: int) -> None:
        task = asyncio.ensure_future(
            chat(provider, "x") if i % 2 else stream(provider, "stall" if i % 3 else "x")
        )
        for _ in range(rng.randint(0, 20)):
            await asyncio.sleep(0)  # noqa: TID251 - one event-loop turn, natively
        task.cancel()
        if i % 4 == 0:
            await asyncio.sleep(0)  # noqa: TID251
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def worker(first: int) -> None:
        for i in range(first, 240, 8):
            with contextlib.suppress(pytest.fail.Exception):  # the call won the race
                await one(i)

    async with anyio.create_task_group() as group:
        for first in range(8):
            group.start_soon(worker, first)
    assert_pool_idle(provider)
    with anyio.fail_after(10):
        assert await chat(provider, "x") == "echo x"
    await provider.aclose()


@asyncio_only
async def test_router_over_native_cancellation(provider: EchoProvider) -> None:
    router = Router()
    router.add_provider(provider)
    for _ in range(ROUNDS):
        await cancelled(router.route("hang"), "wait_for")
    state = pool(provider)
    real = state._network_backend
    state._network_backend = CancelAfterConnect(real)
    for _ in range(ROUNDS):
        task = asyncio.ensure_future(router.route("x"))
        with pytest.raises(asyncio.CancelledError):
            await task
    state._network_backend = real
    assert_pool_idle(provider)
    with anyio.fail_after(10):
        assert await router.route("x") == "echo x"
    assert router.stats()["providers"]["echo"]["in_flight"] == 0
    await provider.aclose()


async def test_anyio_cancellation_still_releases_connections(provider: EchoProvider) -> None:
    """Both backends: anyio scopes were never the problem, and stay fine with the wrapper."""
    for _ in range(ROUNDS):
        with anyio.move_on_after(0.05):
            await chat(provider, "hang")
        with anyio.move_on_after(0.05):
            await stream(provider, "stall")
    assert_pool_idle(provider)
    assert await chat(provider, "x") == "echo x"
    await provider.aclose()


async def test_every_client_sends_through_one_provider_transport(
    provider: EchoProvider,
) -> None:
    client = provider.http_client()
    assert isinstance(client._transport, ProviderTransport)
    assert client.event_hooks["request"] == []  # no per-request hook any more
    await provider.aclose()


def test_loops_closed_without_shutdown_are_not_kept_alive(server: LoopbackServer) -> None:
    """Defect 16: ``loop.close()`` without ``shutdown_asyncgens()`` used to keep the loop,
    its client and its connection alive for good. The loop's clients are released (their
    sockets closed, without a ResourceWarning) as the loop closes."""
    provider = EchoProvider(
        ProviderConfig(name="echo", base_url=server.base_url, http_transport="httpx")
    )
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    clients: list[weakref.ref[httpx.AsyncClient]] = []

    async def call(i: int) -> str:
        clients.append(weakref.ref(provider.http_client()))
        return await provider.generate(str(i))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(30):
            loop = asyncio.new_event_loop()
            assert loop.run_until_complete(call(i)) == f"echo {i}"
            loops.append(weakref.ref(loop))
            loop.close()
            del loop
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert sum(ref() is not None for ref in loops) == 0
    assert sum(ref() is not None for ref in clients) == 0
    assert provider._loops == {}


# -- a cancelled TLS handshake leaves no socket open (found by the soak) -------------------


@pytest.mark.parametrize("cancel", ["anyio scope", "asyncio.wait_for"])
async def test_a_handshake_cancelled_midway_closes_its_socket(
    cancel: str, anyio_backend: str
) -> None:
    if cancel == "asyncio.wait_for" and anyio_backend != "asyncio":
        pytest.skip("native asyncio cancellation")
    accepted = anyio.Event()

    async def silent(stream: anyio.abc.SocketStream) -> None:  # never answers a ClientHello
        accepted.set()
        async with stream:
            await anyio.sleep(60)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610
    provider = EchoProvider(ProviderConfig(name="tls", base_url=f"https://127.0.0.1:{port}"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, silent)
        for _ in range(ROUNDS):
            if cancel == "anyio scope":
                with anyio.move_on_after(0.05):
                    await provider.generate("x")
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(provider.generate("x"), 0.05)  # noqa: TID251
        assert accepted.is_set(), "the handshake was never started"
        await provider.aclose()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
        leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
        assert not leaks, [str(w.message) for w in leaks]
        tg.cancel_scope.cancel()
    await listener.aclose()


@asyncio_only
async def test_a_second_cancellation_inside_the_shielded_close_leaves_no_queued_request(
    provider: EchoProvider,
) -> None:
    """httpcore closes a response under its shield, then dequeues its request; a native
    cancellation inside the shield skips the dequeue (found by the soak at 10,000)."""
    client = provider.http_client()
    for _ in range(ROUNDS):
        response = await client.send(
            client.build_request("POST", "/stream", json={"p": "stall"}), stream=True
        )
        pool_stream = response.stream._stream._inner._httpcore_stream  # type: ignore[attr-defined]
        connection_stream = pool_stream._stream

        async def cancelled_close(close: Any = connection_stream.aclose) -> None:
            await close()  # the connection closes...
            raise asyncio.CancelledError  # ...and a second cancellation lands right after

        connection_stream.aclose = cancelled_close
        with pytest.raises(asyncio.CancelledError):
            await response.aclose()
    assert_pool_idle(provider)
    assert await chat(provider, "after") == "echo after"
