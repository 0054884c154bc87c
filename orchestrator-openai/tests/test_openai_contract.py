"""The orchestrator's provider contract kit, run against the OpenAI emulator."""

from __future__ import annotations

from orchestrator.testing import LoopbackServer, ProviderContract, ScriptableApp
from orchestrator_openai import OpenAIConfig, OpenAIProvider
from orchestrator_openai.emulator import OpenAIEmulator, config_for


class TestOpenAIContract(ProviderContract):
    provider_class = OpenAIProvider
    entry_point = "openai"

    def make_app(self) -> ScriptableApp:
        return OpenAIEmulator()

    def make_config(self, server: LoopbackServer) -> OpenAIConfig:
        return config_for(server)


class TestOpenAIContractOverTLS(TestOpenAIContract):
    """The same standard tests over HTTPS: config_for trusts the test CA (ca_bundle_file)."""

    tls = True


class TestOpenAIContractOnTheKitsFake(ProviderContract):
    """The kit's own fake OpenAI-compatible server (a second, independent implementation of
    the wire format) is served just as well."""

    provider_class = OpenAIProvider
    entry_point = "openai"

    def make_config(self, server: LoopbackServer) -> OpenAIConfig:
        return OpenAIConfig(
            name="openai",
            api_key=self.api_key,
            base_url=f"{server.base_url}/v1",
            model="fake-model",
            embedding_model="fake-embedding",
            embedding_dimension=8,  # FakeOpenAIServer's default
            organization=None,
            project=None,
            extra_headers={},
        )
