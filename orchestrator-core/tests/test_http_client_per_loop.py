"""One pooled HTTP client per event loop: asyncio.run per call, threads, trio then asyncio."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
import trio

from orchestrator import Router
from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig
from orchestrator.testing import LoopbackServer
from orchestrator.types import Completion, Message


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await anyio.sleep(30)
    data = json.dumps({"text": "echo " + json.loads(body or b'{"p": ""}').get("p", "")})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": data.encode()})


class EchoProvider(BaseProvider):
    def _create_http_client(self) -> Any:
        client = super()._create_http_client()
        client.base_url = self.config.base_url or ""
        return client

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        response = await self.http_client().post("/echo", json={"p": prompt})
        return str(response.json()["text"])

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        return Completion(await self.generate(messages[-1].content), provider=self.name)

    async def health_check(self) -> bool:
        return True


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(echo_app) as server:
        yield server


def make(server: LoopbackServer) -> EchoProvider:
    return EchoProvider(ProviderConfig(name="echo", base_url=server.base_url))


def test_threads_and_sequential_asyncio_run(server: LoopbackServer) -> None:
    provider = make(server)
    router = Router()
    router.add_provider(provider)
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda i: asyncio.run(router.route(str(i))), range(20)))
    assert results == [f"echo {i}" for i in range(20)]
    assert [asyncio.run(router.route(str(i))) for i in range(10)] == [
        f"echo {i}" for i in range(10)
    ]
    gc.collect()
    assert provider._loops == {}  # every loop's client was closed when its loop ended
    assert server.open_connections == 0 or _eventually_zero(server)


def _eventually_zero(server: LoopbackServer) -> bool:
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if server.open_connections == 0:
            return True
        time.sleep(0.01)
    return False


def test_trio_then_asyncio(server: LoopbackServer) -> None:
    provider = make(server)
    assert trio.run(provider.generate, "t") == "echo t"
    assert asyncio.run(provider.generate("a")) == "echo a"
    assert anyio.run(provider.generate, "b", backend="trio") == "echo b"
    assert provider._loops == {}


@pytest.mark.anyio
async def test_one_client_reused_per_loop_and_closed_by_aclose(server: LoopbackServer) -> None:
    provider = make(server)
    first = provider.http_client()
    await provider.generate("x")
    assert provider.http_client() is first
    assert server.open_connections >= 1
    await provider.aclose()
    assert first.is_closed
    assert _eventually_zero(server)
    assert provider.http_client() is not first  # a fresh one after close
    await provider.aclose()


@pytest.mark.anyio
async def test_loop_lock_is_per_loop(server: LoopbackServer) -> None:
    provider = make(server)
    assert provider.loop_lock("token") is provider.loop_lock("token")
    assert provider.loop_lock("token") is not provider.loop_lock("other")


@pytest.mark.anyio
async def test_cancel_releases_the_connection(server: LoopbackServer) -> None:
    provider = make(server)
    with anyio.move_on_after(0.2):
        await provider.http_client().post("/slow", json={})
    await provider.aclose()
    assert _eventually_zero(server)


def test_abandoned_request_body_leaves_no_unfinished_generator() -> None:
    """A write that fails part-way abandons the request body. httpx's own body iterator is an
    async generator, which trio reports as garbage-collected unfinished (a ResourceWarning,
    an error under this suite's filterwarnings); the body every provider client sends is a
    plain iterator instead, and carries the same bytes."""
    import httpx

    seen: list[bytes] = []

    async def fail_mid_write(request: httpx.Request) -> httpx.Response:
        async for chunk in request.stream:  # type: ignore[union-attr]
            seen.append(chunk)
            raise httpx.WriteError("connection reset while sending the body")
        raise AssertionError("the request had no body")

    async def main() -> None:
        provider = EchoProvider(
            ProviderConfig(name="echo", base_url="http://echo.test", max_retries=0),
            transport=httpx.MockTransport(fail_mid_write),
        )
        with pytest.raises(httpx.WriteError):
            await provider.http_client().post("/echo", json={"p": "hi"})
        gc.collect()
        await trio.sleep(0)  # trio finalizes collected async generators on its next tick
        await provider.aclose()

    trio.run(main)
    assert seen == [b'{"p":"hi"}']


def test_mock_provider_survives_event_loops() -> None:
    """Issue-8 scenarios for the built-in mock: threads, sequential asyncio.run, trio then
    asyncio, streams included."""
    from orchestrator.providers import MockProvider

    provider = MockProvider(ProviderConfig(name="mock"))
    router = Router()
    router.add_provider(provider)

    async def both(i: int) -> str:
        streamed = "".join([t async for t in router.route_stream(f"s{i}")])
        assert streamed == f"Mock response to: s{i}"
        return await router.route(f"n{i}")

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda i: asyncio.run(both(i)), range(20)))
    assert results == [f"Mock response to: n{i}" for i in range(20)]
    assert [asyncio.run(both(i)) for i in range(10)] == [
        f"Mock response to: n{i}" for i in range(10)
    ]
    assert trio.run(both, 1) == asyncio.run(both(1))
    assert router.stats()["providers"]["mock"]["in_flight"] == 0


def test_mutual_tls_needs_tls() -> None:
    with pytest.raises(ValueError, match="needs tls=True"):
        LoopbackServer(echo_app, client_certs=True)
