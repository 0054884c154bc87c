"""GigaChat over the aiohttp transport (``http_transport="aiohttp"``, asyncio): TLS with the
CA bundle, mutual TLS, timeouts and one client per event loop hold as with httpx's.
The standard tests run over it in test_gigachat_contract.py."""

from __future__ import annotations

import asyncio

import pytest
import trio

from orchestrator.errors import ProviderError, ProviderTimeoutError
from orchestrator.providers._aiohttp import AiohttpTransport
from orchestrator.providers._transport import ProviderTransport
from orchestrator.testing import LoopbackServer
from orchestrator.types import Message
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import GigaChatEmulator, config_for

pytest.importorskip("aiohttp")

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]
HELLO = [Message("user", "Hello")]
ANSWER = "GigaChat emulator: Hello"


def uses_aiohttp(provider: GigaChatProvider) -> bool:
    transport = provider.http_client()._transport
    assert isinstance(transport, ProviderTransport)
    return isinstance(transport.inner, AiohttpTransport)


async def test_tls_with_the_ca_bundle_and_mutual_tls() -> None:
    with LoopbackServer(GigaChatEmulator(), tls=True, client_certs=True) as mtls:
        provider = GigaChatProvider(
            config_for(
                mtls,
                cert_file=mtls.client_cert_file,
                key_file=mtls.client_key_file,
                http_transport="aiohttp",
            )
        )
        assert uses_aiohttp(provider)
        assert (await provider.chat(HELLO)).text == ANSWER
        assert "".join([c.delta async for c in provider.stream(HELLO)]) == ANSWER
        await provider.aclose()

        anonymous = GigaChatProvider(config_for(mtls, max_retries=0, http_transport="aiohttp"))
        with pytest.raises(ProviderError) as info:
            await anonymous.chat(HELLO)
        assert info.value.transient  # a refused handshake is a transport failure...
        assert not isinstance(info.value, ProviderTimeoutError)  # ...not a timeout
        await anonymous.aclose()


async def test_an_untrusted_certificate_is_not_a_timeout() -> None:
    with LoopbackServer(GigaChatEmulator(), tls=True) as tls:
        untrusted = GigaChatProvider(
            config_for(tls, ca_bundle_file=None, max_retries=0, http_transport="aiohttp")
        )
        with pytest.raises(ProviderError, match=r"(?i)certificate") as info:
            await untrusted.chat(HELLO)
        assert not isinstance(info.value, ProviderTimeoutError)
        await untrusted.aclose()


async def test_timeout_is_a_typed_error() -> None:
    app = GigaChatEmulator()
    with LoopbackServer(app) as server:
        provider = GigaChatProvider(
            config_for(server, timeout=0.3, max_retries=0, http_transport="aiohttp")
        )
        await provider.chat(HELLO)  # the token first
        app.latency = 5
        with pytest.raises(ProviderTimeoutError):
            await provider.chat(HELLO)
        app.latency = 0
        assert (await provider.chat(HELLO)).text == ANSWER
        await provider.aclose()


def test_one_client_per_event_loop(anyio_backend: str) -> None:
    with LoopbackServer(GigaChatEmulator()) as server:
        provider = GigaChatProvider(config_for(server, max_retries=0, http_transport="aiohttp"))

        async def call(i: int) -> tuple[bool, str]:
            return uses_aiohttp(provider), (await provider.chat([Message("user", f"q{i}")])).text

        for i in range(5):
            assert asyncio.run(call(i)) == (True, f"GigaChat emulator: q{i}")
        assert trio.run(call, 9) == (False, "GigaChat emulator: q9")  # trio: httpx's
        assert provider._loops == {}
