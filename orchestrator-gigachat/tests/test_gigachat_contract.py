"""The orchestrator's provider contract kit, run against the GigaChat emulator."""

from __future__ import annotations

import importlib.util

import pytest

from orchestrator.testing import LoopbackServer, ProviderContract, ScriptableApp
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.config import GigaChatConfig
from orchestrator_gigachat.emulator import GigaChatEmulator, config_for


class TestGigaChatContract(ProviderContract):
    provider_class = GigaChatProvider
    entry_point = "gigachat"

    def make_app(self) -> ScriptableApp:
        return GigaChatEmulator()

    def make_config(self, server: LoopbackServer) -> GigaChatConfig:
        return config_for(server)


class TestGigaChatContractOverTLS(TestGigaChatContract):
    """The same standard tests over HTTPS, as the real service is reached: the kit serves
    with a test CA and config_for trusts it through ca_bundle_file."""

    tls = True


_AIOHTTP = pytest.mark.skipif(
    importlib.util.find_spec("aiohttp") is None,
    reason="the aiohttp transport (orchestrator-core[aiohttp]) is not installed",
)


@_AIOHTTP
class TestGigaChatContractOverAiohttp(TestGigaChatContract):
    """The standard tests with ``http_transport="aiohttp"``, on asyncio (trio keeps httpx's
    transport, which the classes above cover)."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    def make_config(self, server: LoopbackServer) -> GigaChatConfig:
        return config_for(server, http_transport="aiohttp")


@_AIOHTTP
class TestGigaChatContractOverAiohttpAndTLS(TestGigaChatContractOverAiohttp):
    """Over HTTPS with aiohttp: the CA bundle reaches aiohttp's TLS context."""

    tls = True
