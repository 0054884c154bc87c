"""The orchestrator's provider contract kit, run against the YandexGPT emulator."""

from __future__ import annotations

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
