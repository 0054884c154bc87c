"""The orchestrator's provider contract kit, run against the YandexGPT emulator."""

from __future__ import annotations

import importlib.util

import pytest

from orchestrator.testing import LoopbackServer, ProviderContract, ScriptableApp
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.config import YandexGPTConfig
from orchestrator_yandexgpt.emulator import YandexGPTEmulator, config_for


class TestYandexGPTContract(ProviderContract):
    provider_class = YandexGPTProvider
    entry_point = "yandexgpt"

    def make_app(self) -> ScriptableApp:
        return YandexGPTEmulator()

    def make_config(self, server: LoopbackServer) -> YandexGPTConfig:
        return config_for(server)


class TestYandexGPTContractOverTLS(TestYandexGPTContract):
    """The same standard tests over HTTPS: the kit serves with a test CA and config_for
    trusts it through ca_bundle."""

    tls = True


_AIOHTTP = pytest.mark.skipif(
    importlib.util.find_spec("aiohttp") is None,
    reason="the aiohttp transport (orchestrator-core[aiohttp]) is not installed",
)


@_AIOHTTP
class TestYandexGPTContractOverAiohttp(TestYandexGPTContract):
    """The standard tests with ``http_transport="aiohttp"``, on asyncio (trio keeps httpx's
    transport, which the classes above cover)."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    def make_config(self, server: LoopbackServer) -> YandexGPTConfig:
        return config_for(server, http_transport="aiohttp")


@_AIOHTTP
class TestYandexGPTContractOverAiohttpAndTLS(TestYandexGPTContractOverAiohttp):
    """Over HTTPS with aiohttp: the CA bundle reaches aiohttp's TLS context."""

    tls = True
