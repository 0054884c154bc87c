"""The orchestrator's provider contract kit, run against the Ollama emulator."""

from __future__ import annotations

from orchestrator.testing import LoopbackServer, ProviderContract, ScriptableApp
from orchestrator_ollama import OllamaConfig, OllamaProvider
from orchestrator_ollama.emulator import OllamaEmulator, config_for


class TestOllamaContract(ProviderContract):
    """A server that checks a key (ollama.com, or a proxy in front of a local Ollama), so the
    kit's no-leak test has a credential to look for."""

    provider_class = OllamaProvider
    entry_point = "ollama"

    def make_app(self) -> ScriptableApp:
        return OllamaEmulator(api_key=self.api_key)

    def make_config(self, server: LoopbackServer) -> OllamaConfig:
        return config_for(server)


class TestOllamaContractOverTLS(TestOllamaContract):
    """The same standard tests over HTTPS: config_for trusts the test CA (ca_bundle_file)."""

    tls = True
