"""Smoke test of the built wheels, run in a fresh venv outside the workspace (nox -s build).

It imports only what the wheels installed: a missing dependency or package-data file fails here.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
from pathlib import Path

import orchestrator
from orchestrator import Router
from orchestrator.plugins import default_registry

here = Path(orchestrator.__file__).resolve()
assert "site-packages" in here.parts, f"orchestrator imported from the workspace: {here}"
PLUGINS = ("gigachat", "yandexgpt", "openai", "ollama")
PRICED = ("gigachat", "yandexgpt")  # the plugins that ship a prices.toml
for module in ("orchestrator", *(f"orchestrator_{name}" for name in PLUGINS)):
    package = Path(__import__(module).__file__).parent
    assert (package / "py.typed").exists(), f"{module} wheel lacks py.typed"

registry = default_registry()
registry.load()
assert not registry.failures, registry.failures
assert {"mock", *PLUGINS} <= set(registry.providers), registry.providers
for name in PLUGINS:
    info = registry.provider_info(name)
    assert info.version == importlib.metadata.version(f"orchestrator-{name}")
for name in PRICED:
    # The list prices are package data: a wheel without prices.toml fails on import.
    info = registry.provider_info(name)
    assert info.cls.prices.origin == f"orchestrator_{name}/prices.toml", info.cls.prices
assert importlib.metadata.version("multi-llm-orchestrator-core") == orchestrator.__version__
assert registry.provider_info("yandexgpt").cls.prices, "YandexGPT ships list prices"

from orchestrator.providers import (  # noqa: E402
    GigaChatProvider,
    OllamaProvider,
    OpenAIProvider,
    YandexGPTProvider,
)

assert GigaChatProvider is registry.provider_info("gigachat").cls
assert YandexGPTProvider is registry.provider_info("yandexgpt").cls
assert OpenAIProvider is registry.provider_info("openai").cls
assert OllamaProvider is registry.provider_info("ollama").cls


async def main() -> str:
    router = Router()
    router.add_provider(registry.create_provider("mock"))
    return await router.route("smoke")


assert asyncio.run(main()) == "Mock response to: smoke"

# orchestrator-otel: installed, its entry point registers a dormant object (no hooks, no cost)
# until configured; configured, a request produces its Prometheus series.
import orchestrator_otel  # noqa: E402
from orchestrator_otel.prometheus import PrometheusExporter  # noqa: E402

assert (Path(orchestrator_otel.__file__).parent / "py.typed").exists(), "orchestrator_otel py.typed"
assert Router()._lifecycle() is None, "an unconfigured orchestrator-otel must cost nothing"
exporter = PrometheusExporter()
orchestrator_otel.configure(prometheus=exporter)
assert asyncio.run(main()) == "Mock response to: smoke"
assert b"gen_ai_client_operation_duration_seconds_bucket" in exporter.exposition()[0]

import orchestrator_gateway  # noqa: E402  (the gateway wheel: importable, typed)

assert (Path(orchestrator_gateway.__file__).parent / "py.typed").exists()

# orchestrator-langchain: its wheel brings langchain-core, and the chat model answers.
import orchestrator_langchain  # noqa: E402

assert (Path(orchestrator_langchain.__file__).parent / "py.typed").exists(), "langchain py.typed"
smoke_router = Router()
smoke_router.add_provider(registry.create_provider("mock"))
llm = orchestrator_langchain.ChatOrchestrator(router=smoke_router)
assert llm.invoke("smoke").content == "Mock response to: smoke"
print("smoke ok:", sys.version.split()[0], sorted(registry.providers))
