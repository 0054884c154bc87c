"""Entry-point discovery: lazy, once, isolated failures, allow/block lists, lookups."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

import orchestrator
from orchestrator.errors import ConfigurationError
from orchestrator.plugins import (
    ENV_ALLOW,
    ENV_BLOCK,
    PluginLoadWarning,
    PluginRegistry,
    default_registry,
)
from orchestrator.providers import MockProvider, ProviderConfig


class FakeDist:
    name = "orchestrator-fake"
    version = "9.9"


class FakeEntryPoint:
    def __init__(self, name: str, loader: Callable[[], Any]) -> None:
        self.name = name
        self.dist = FakeDist()
        self._loader = loader

    def load(self) -> Any:
        return self._loader()


def plugin_module(name: str, provider_name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    class FakeProvider(MockProvider):
        pass

    FakeProvider.__name__ = f"{provider_name.title()}Provider"

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(FakeProvider, name=provider_name, aliases=(provider_name[:2],))

    module.register_providers = register_providers  # type: ignore[attr-defined]
    module.FakeProvider = FakeProvider  # type: ignore[attr-defined]
    return module


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    points: list[FakeEntryPoint] = []

    def fake_entry_points(group: str) -> list[FakeEntryPoint]:
        assert group == "orchestrator.providers"
        return points

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    monkeypatch.delenv(ENV_BLOCK, raising=False)
    return points


def boom() -> Any:
    raise ImportError("No module named 'missing_dependency'")


def test_discovery_is_lazy_and_runs_once(entry_points: list[FakeEntryPoint]) -> None:
    loads = 0

    def load() -> types.ModuleType:
        nonlocal loads
        loads += 1
        return plugin_module("p_alpha", "alpha")

    entry_points.append(FakeEntryPoint("alpha", load))
    registry = PluginRegistry()
    assert loads == 0
    info = registry.provider_info("alpha")
    registry.provider_info("mock")
    registry.load()
    assert loads == 1
    assert (info.plugin, info.distribution, info.version) == ("alpha", "orchestrator-fake", "9.9")
    assert registry.provider_info("al") is info
    assert registry.provider_class("AlphaProvider") is info.cls


def test_broken_plugin_is_isolated(entry_points: list[FakeEntryPoint]) -> None:
    def bad_register() -> types.ModuleType:
        module = types.ModuleType("p_bad")

        @orchestrator.hookimpl
        def register_providers(register: Callable[..., None]) -> None:
            raise RuntimeError("register exploded")

        module.register_providers = register_providers  # type: ignore[attr-defined]
        return module

    entry_points.append(FakeEntryPoint("broken-import", boom))
    entry_points.append(FakeEntryPoint("broken-register", bad_register))
    entry_points.append(FakeEntryPoint("good", lambda: plugin_module("p_good", "good")))
    registry = PluginRegistry()
    with pytest.warns(PluginLoadWarning) as record:
        registry.load()
    assert any("broken-import" in str(w.message) for w in record)
    assert any("broken-register" in str(w.message) for w in record)
    assert any("orchestrator-fake" in str(w.message) for w in record)
    assert {f.plugin for f in registry.failures} == {"broken-import", "broken-register"}
    assert "missing_dependency" in registry.failures[0].reason
    assert registry.provider_info("good").name == "good"
    from orchestrator import Router

    router = Router(registry=registry)
    router.add_provider(registry.create_provider("good"))


def test_allow_and_block_lists(
    entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points.append(FakeEntryPoint("one", lambda: plugin_module("p1", "one")))
    entry_points.append(FakeEntryPoint("two", lambda: plugin_module("p2", "two")))
    monkeypatch.setenv(ENV_ALLOW, "two")
    assert set(PluginRegistry().providers) == set()  # nothing loaded until used
    registry = PluginRegistry()
    registry.load()
    assert set(registry.providers) == {"mock", "two"}
    monkeypatch.setenv(ENV_ALLOW, "")
    registry = PluginRegistry()
    registry.load()
    assert set(registry.providers) == {"mock"}
    monkeypatch.delenv(ENV_ALLOW)
    monkeypatch.setenv(ENV_BLOCK, "one, three")
    registry = PluginRegistry()
    registry.load()
    assert set(registry.providers) == {"mock", "two"}


def test_duplicate_names_are_refused(entry_points: list[FakeEntryPoint]) -> None:
    entry_points.append(FakeEntryPoint("dup", lambda: plugin_module("p_dup", "mock")))
    registry = PluginRegistry()
    with pytest.warns(PluginLoadWarning, match="already registered"):
        registry.load()
    assert registry.provider_info("mock").cls is MockProvider


def test_register_validates_classes(registry: PluginRegistry) -> None:
    module = types.ModuleType("p_invalid")

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(dict, name="dict")

    module.register_providers = register_providers  # type: ignore[attr-defined]
    with pytest.warns(PluginLoadWarning, match="not a BaseProvider"):
        registry.register_plugin(module, "invalid")
    assert "dict" not in registry.providers


def test_unknown_provider_says_what_to_install(registry: PluginRegistry) -> None:
    with pytest.raises(ConfigurationError, match="pip install orchestrator-gigachat"):
        registry.provider_info("gigachat")
    with pytest.raises(ConfigurationError, match="Installed providers: mock"):
        registry.provider_info("nope")


def test_create_provider_by_name(registry: PluginRegistry) -> None:
    provider = registry.create_provider("mock", model="m-2")
    assert isinstance(provider, MockProvider)
    assert provider.name == "mock" and provider.config.model == "m-2"
    provider = registry.create_provider("mock", ProviderConfig(name="named"))
    assert provider.name == "named"
    with pytest.raises(TypeError):
        registry.create_provider("mock", ProviderConfig(name="x"), model="y")


def test_strategies_registered_through_hooks(registry: PluginRegistry) -> None:
    class Reverse:
        name = "reverse"

        def order(self, slots: Any) -> Any:
            return list(reversed(slots))

    module = types.ModuleType("p_strategy")

    @orchestrator.hookimpl
    def register_strategies(register: Callable[..., None]) -> None:
        register(Reverse, name="reverse")

    module.register_strategies = register_strategies  # type: ignore[attr-defined]
    registry.register_plugin(module, "strategy-plugin")
    from orchestrator import Router

    router = Router(strategy="reverse", registry=registry)
    assert router.strategy_name == "reverse"
    assert {"round-robin", "random", "first-available", "weighted"} <= set(registry.strategies)


def test_missing_provider_class_import_names_the_package(
    monkeypatch: pytest.MonkeyPatch, registry: PluginRegistry
) -> None:
    monkeypatch.setattr("orchestrator.plugins._default", registry)
    with pytest.raises(ImportError, match="pip install orchestrator-yandexgpt"):
        from orchestrator.providers import YandexGPTProvider  # noqa: F401
    with pytest.raises(ImportError, match="entry point"):
        from orchestrator.providers import NoSuchProvider  # noqa: F401


def test_default_registry_is_shared() -> None:
    assert default_registry() is default_registry()


def test_import_orchestrator_is_light() -> None:
    code = (
        "import sys, orchestrator; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('httpx', 'httpcore', 'orchestrator_gigachat', 'orchestrator_yandexgpt', 'pydantic')]; "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
