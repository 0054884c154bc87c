"""The aiohttp transport (issue 13, item 3): chosen by ``ProviderConfig.http_transport`` on
asyncio when ``orchestrator-core[aiohttp]`` is installed; trio keeps httpx's transport.

What providers promise holds with it: one client per event loop, closed with its loop (also
one closed without shutting down), cancellation (native asyncio and anyio) releasing the
connection, timeouts as typed errors.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import warnings
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anyio
import httpx
import pytest
import trio

from orchestrator import Router
from orchestrator.errors import ConfigurationError, ProviderTimeoutError, TransportError
from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig
from orchestrator.providers._aiohttp import AiohttpTransport
from orchestrator.providers._transport import ProviderTransport, pool_of
from orchestrator.testing import LoopbackServer
from orchestrator.types import Chunk, Completion, Message

pytest.importorskip("aiohttp")

pytestmark = pytest.mark.anyio
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

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
    if prompt == "hang":
        await anyio.sleep(60)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/stream":
        for word in ("one", "two"):
            await send({"type": "http.response.body", "body": word.encode(), "more_body": True})
        if prompt == "stall":
            await anyio.sleep(60)
        await send({"type": "http.response.body", "body": b"end"})
        return
    data = json.dumps({"text": "echo " + prompt})
    await send({"type": "http.response.body", "body": data.encode()})


class EchoProvider(BaseProvider):
    def _create_http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.config.base_url or "",
            timeout=self.config.timeout,
            verify=self.config.verify_ssl,
            transport=self._transport,
            limits=httpx.Limits(max_connections=2),
        )

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        async def once() -> str:
            response = await self.http_client().post("/chat", json={"p": prompt})
            return str(response.json()["text"])

        return await self._retry_with_backoff(once)

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        return Completion(await self.generate(messages[-1].content), provider=self.name)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        client = self.http_client()
        request = client.build_request("POST", "/stream", json={"p": messages[-1].content})
        response = await client.send(request, stream=True)
        try:
            async for part in response.aiter_bytes():
                yield Chunk(delta=part.decode(), provider=self.name)
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def health_check(self) -> bool:
        return True


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(app) as running:
        yield running


def make(server: LoopbackServer, **settings: Any) -> EchoProvider:
    settings.setdefault("http_transport", "aiohttp")
    settings.setdefault("max_retries", 0)
    return EchoProvider(ProviderConfig(name="echo", base_url=server.base_url, **settings))


@pytest.fixture
def provider(server: LoopbackServer) -> EchoProvider:
    return make(server)


def inner(provider: BaseProvider) -> httpx.AsyncBaseTransport:
    transport = provider.http_client()._transport
    assert isinstance(transport, ProviderTransport)
    return transport.inner


def assert_idle(provider: BaseProvider) -> None:
    """aiohttp's connector holds no connection in use and no waiter for one."""
    transport = inner(provider)
    assert isinstance(transport, AiohttpTransport)
    assert transport.session is not None
    connector = transport.session.connector
    assert connector is not None
    assert not connector._acquired
    assert not any(connector._waiters.values())


async def chat(provider: BaseProvider, prompt: str) -> str:
    return (await provider.chat([Message("user", prompt)])).text


async def stream(provider: BaseProvider, prompt: str) -> str:
    return "".join([chunk.delta async for chunk in provider.stream([Message("user", prompt)])])


# -- choosing the transport ------------------------------------------------------------------


async def test_chosen_on_asyncio_only(server: LoopbackServer, anyio_backend: str) -> None:
    provider = make(server)
    assert await chat(provider, "x") == "echo x"
    if anyio_backend == "asyncio":
        assert isinstance(inner(provider), AiohttpTransport)
    else:  # trio keeps httpx's transport
        assert pool_of(inner(provider)) is not None
    await provider.aclose()


@pytest.mark.parametrize(
    ("choice", "aiohttp"), [("httpx", False), ("auto", True), ("aiohttp", True)]
)
@asyncio_only
async def test_config_chooses(server: LoopbackServer, choice: str, aiohttp: bool) -> None:
    provider = make(server, http_transport=choice)
    assert isinstance(inner(provider), AiohttpTransport) is aiohttp
    await provider.aclose()


@asyncio_only
async def test_a_given_transport_is_kept(server: LoopbackServer) -> None:
    given = httpx.AsyncHTTPTransport()
    provider = EchoProvider(
        ProviderConfig(name="echo", base_url=server.base_url, http_transport="aiohttp"),
        transport=given,
    )
    assert inner(provider) is given
    await provider.aclose()


def test_the_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_HTTP_TRANSPORT", "auto")
    assert ProviderConfig(name="x").http_transport == "auto"
    monkeypatch.setenv("ORCHESTRATOR_HTTP_TRANSPORT", "curl")
    with pytest.raises(ValueError, match="http_transport"):
        ProviderConfig(name="x")
    monkeypatch.delenv("ORCHESTRATOR_HTTP_TRANSPORT")
    assert ProviderConfig(name="x").http_transport == "httpx"


def test_aiohttp_required_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "aiohttp" else real(name, *a),
    )
    config = ProviderConfig(name="echo", http_transport="aiohttp")
    with pytest.raises(ConfigurationError, match=r"orchestrator-core\[aiohttp\]"):
        EchoProvider(config)
    auto = EchoProvider(ProviderConfig(name="echo", http_transport="auto"))
    assert auto._aiohttp is False  # auto falls back to httpx


# -- per-loop clients --------------------------------------------------------------------------


def test_one_client_per_loop_closed_with_it(server: LoopbackServer) -> None:
    provider = make(server)
    seen: list[Any] = []

    async def call(i: int) -> str:
        seen.append(inner(provider))
        return await chat(provider, str(i))

    assert [asyncio.run(call(i)) for i in range(5)] == [f"echo {i}" for i in range(5)]
    assert len({id(t) for t in seen}) == 5  # a transport (an aiohttp session) per loop
    assert all(t.session is None for t in seen)  # each closed as its loop ended
    assert trio.run(chat, provider, "t") == "echo t"  # trio: httpx's transport
    gc.collect()
    assert provider._loops == {}


def test_loops_closed_without_shutdown_are_not_kept_alive(server: LoopbackServer) -> None:
    provider = make(server)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    clients: list[weakref.ref[httpx.AsyncClient]] = []

    async def call(i: int) -> str:
        clients.append(weakref.ref(provider.http_client()))
        return await chat(provider, str(i))

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


# -- cancellation and timeouts ---------------------------------------------------------------


async def cancelled(call: Any, how: str) -> None:
    async def guarded() -> object:
        if how == "timeout":
            async with asyncio.timeout(0.05):
                return await call
        return await call

    task = asyncio.ensure_future(guarded())
    if how == "wait_for":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(task, 0.05)  # noqa: TID251 - the native API under test
    elif how == "cancel":
        await anyio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises((TimeoutError, asyncio.CancelledError)):
            await task


@asyncio_only
@pytest.mark.parametrize("how", ["wait_for", "timeout", "cancel"])
@pytest.mark.parametrize(
    ("call", "prompt"),
    [(chat, "hang"), (stream, "hang"), (stream, "stall")],
    ids=["chat-headers", "stream-headers", "stream-mid-body"],
)
async def test_native_cancellation_releases_connections(
    provider: EchoProvider, how: str, call: Any, prompt: str
) -> None:
    for _ in range(ROUNDS):
        await cancelled(call(provider, prompt), how)
    assert_idle(provider)
    with anyio.fail_after(10):
        assert await call(provider, "x") in ("echo x", "onetwoend")
    await provider.aclose()


@asyncio_only
async def test_anyio_cancellation_releases_connections(provider: EchoProvider) -> None:
    for _ in range(ROUNDS):
        with anyio.move_on_after(0.05):
            await chat(provider, "hang")
        with anyio.move_on_after(0.05):
            await stream(provider, "stall")
    assert_idle(provider)
    assert await chat(provider, "x") == "echo x"
    await provider.aclose()


@asyncio_only
async def test_router_over_cancellations(provider: EchoProvider) -> None:
    router = Router()
    router.add_provider(provider)
    for _ in range(ROUNDS):
        await cancelled(router.route("hang"), "wait_for")
    assert_idle(provider)
    with anyio.fail_after(10):
        assert await router.route("x") == "echo x"
    await provider.aclose()


@asyncio_only
async def test_timeout_is_a_typed_error(server: LoopbackServer) -> None:
    provider = make(server, timeout=0.2)
    with pytest.raises(ProviderTimeoutError):
        await chat(provider, "hang")
    assert_idle(provider)
    assert await chat(provider, "x") == "echo x"
    await provider.aclose()


@asyncio_only
async def test_tls_verification(server: LoopbackServer) -> None:
    with LoopbackServer(app, tls=True) as tls:
        unverified = make(tls, verify_ssl=False)
        assert await chat(unverified, "x") == "echo x"
        await unverified.aclose()
        verified = make(tls)  # the test CA is not trusted: the handshake must fail
        with pytest.raises(TransportError, match=r"ConnectError.*(?i:certificate)") as info:
            await chat(verified, "x")
        # never a ConnectTimeout ("raise the timeout"), as httpx-aiohttp reported it
        assert not isinstance(info.value, ProviderTimeoutError)
        await verified.aclose()
