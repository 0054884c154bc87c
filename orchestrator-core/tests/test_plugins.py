"""Entry-point discovery: lazy, once, isolated failures, allow/block lists, lookups."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import subprocess
import sys
import textwrap
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator.errors import ConfigurationError
from orchestrator.plugins import (
    ENV_ALLOW,
    ENV_BLOCK,
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


def test_broken_plugin_is_isolated(
    entry_points: list[FakeEntryPoint], caplog: pytest.LogCaptureFixture
) -> None:
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
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failure is logged, never warned
        registry.load()
    logged = [r.getMessage() for r in caplog.records if r.name == "orchestrator.plugins"]
    assert any("broken-import" in m and "orchestrator-fake 9.9" in m for m in logged)
    assert any("broken-register" in m and "register exploded" in m for m in logged)
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
    registry.load()
    assert registry.provider_info("mock").cls is MockProvider
    [failure] = registry.failures
    assert failure.plugin == "dup"
    assert "provider name 'mock' is already registered" in failure.reason


def test_register_validates_classes(registry: PluginRegistry) -> None:
    module = types.ModuleType("p_invalid")

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(dict, name="dict")

    module.register_providers = register_providers  # type: ignore[attr-defined]
    registry.register_plugin(module, "invalid")
    assert "dict" not in registry.providers
    [failure] = registry.failures
    assert failure.plugin == "invalid" and "not a BaseProvider" in failure.reason


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


# -- isolation: whatever a plugin raises, loading finishes (issue 11, defect 10) ------------


class PluginBug(BaseException):
    """A BaseException of a plugin's own, outside the Exception tree."""


def _sys_exit() -> None:
    sys.exit(3)


def _generator_exit() -> None:
    raise GeneratorExit


def _cancelled() -> None:
    raise asyncio.CancelledError


def _group() -> None:
    raise BaseExceptionGroup("plugin tasks", [SystemExit(1), ValueError("x")])


def _own_base() -> None:
    raise PluginBug("custom")


RAISERS = {
    "SystemExit": _sys_exit,
    "GeneratorExit": _generator_exit,
    "CancelledError": _cancelled,
    "BaseExceptionGroup": _group,
    "PluginBug": _own_base,
}


def raising_at_registration(raiser: Callable[[], None]) -> types.ModuleType:
    module = types.ModuleType("p_raises")

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        raiser()

    module.register_providers = register_providers  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize("stage", ["import", "registration"])
@pytest.mark.parametrize("raised", list(RAISERS))
def test_any_base_exception_from_a_plugin_is_isolated(
    entry_points: list[FakeEntryPoint], stage: str, raised: str
) -> None:
    raiser = RAISERS[raised]

    def load() -> types.ModuleType:
        if stage == "import":
            raiser()
        return raising_at_registration(raiser)

    entry_points.append(FakeEntryPoint("bad", load))
    entry_points.append(FakeEntryPoint("good", lambda: plugin_module("p_good", "good")))
    registry = PluginRegistry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the plugin template's pytest setting
        registry.load()
    [failure] = registry.failures
    assert (failure.plugin, failure.distribution, failure.version) == (
        "bad",
        "orchestrator-fake",
        "9.9",
    )
    assert f" {raised}" in failure.reason  # names what the plugin raised
    assert set(registry.providers) == {"mock", "good"}
    registry.load()  # loaded once: nothing recorded twice
    assert len(registry.failures) == 1
    from orchestrator import Router

    Router(registry=registry).add_provider(registry.create_provider("good"))


def test_failure_reason_names_the_exception(entry_points: list[FakeEntryPoint]) -> None:
    entry_points.append(FakeEntryPoint("exits", _sys_exit))
    registry = PluginRegistry()
    registry.load()
    assert registry.failures[0].reason == "import failed: SystemExit: 3"


def test_ctrl_c_during_loading_leaves_no_half_loaded_registry(
    entry_points: list[FakeEntryPoint],
) -> None:
    interrupt = True

    def load() -> types.ModuleType:
        if interrupt:
            raise KeyboardInterrupt
        return plugin_module("p_late", "late")

    entry_points.append(FakeEntryPoint("early", lambda: plugin_module("p_early", "early")))
    entry_points.append(FakeEntryPoint("late", load))
    registry = PluginRegistry()
    with pytest.raises(KeyboardInterrupt):
        registry.load()
    assert registry.providers == {} and registry.failures == [] and registry.version == 0
    interrupt = False
    registry.load()  # a later load starts afresh
    assert set(registry.providers) == {"mock", "early", "late"}
    assert registry.failures == []


def test_a_group_carrying_ctrl_c_still_stops_loading(entry_points: list[FakeEntryPoint]) -> None:
    def load() -> types.ModuleType:
        raise BaseExceptionGroup("plugin tasks", [KeyboardInterrupt()])

    entry_points.append(FakeEntryPoint("interrupted", load))
    with pytest.raises(BaseExceptionGroup):
        PluginRegistry().load()


def test_an_unprintable_exception_is_still_recorded(entry_points: list[FakeEntryPoint]) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def load() -> types.ModuleType:
        raise Unprintable

    entry_points.append(FakeEntryPoint("odd", load))
    registry = PluginRegistry()
    registry.load()
    assert registry.failures[0].reason == "import failed: Unprintable: <unprintable>"


def test_router_survives_a_plugin_calling_sys_exit_under_w_error(tmp_path: Path) -> None:
    """End to end: a really installed plugin (dist-info on sys.path) exits at import; a
    program run with ``-W error`` creates a Router, and ``orchestrator providers`` says why."""
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit('no config')\n")
    dist = tmp_path / "orchestrator_exiting-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: orchestrator-exiting\nVersion: 1.2\n"
    )
    (dist / "entry_points.txt").write_text("[orchestrator.providers]\nexiting = exiting_plugin\n")
    code = textwrap.dedent(
        """
        from orchestrator import Router
        from orchestrator.plugins import default_registry

        Router()
        print([(f.plugin, f.distribution, f.reason) for f in default_registry().failures])
        """
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "", "ORCHESTRATOR_DISABLE_PLUGINS": ""}
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert "('exiting', 'orchestrator-exiting', 'import failed: SystemExit: no config')" in (
        run.stdout
    )
    assert run.stderr == ""  # a library prints nothing by default (its logger has a NullHandler)
    logged = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env={**env, "ORCHESTRATOR_LOG": "info"},
    )
    assert "orchestrator plugin 'exiting' (distribution orchestrator-exiting 1.2) skipped" in (
        logged.stderr
    )
    listing = subprocess.run(
        [sys.executable, "-W", "error", "-m", "orchestrator", "providers"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert listing.returncode == 0, listing.stderr
    assert "exiting" in listing.stdout + listing.stderr
    assert "SystemExit: no config" in listing.stdout + listing.stderr


# -- aliases share the namespace of names (issue 11, defect 10) -----------------------------


def aliased_module(name: str, provider: str, aliases: Any) -> types.ModuleType:
    module = types.ModuleType(name)

    class AliasedProvider(MockProvider):
        pass

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(AliasedProvider, name=provider, aliases=aliases)

    module.register_providers = register_providers  # type: ignore[attr-defined]
    return module


def test_an_alias_cannot_take_over_mock(registry: PluginRegistry) -> None:
    registry.register_plugin(aliased_module("p_hijack", "hijack", ("mock",)), "hijack")
    assert registry.provider_info("mock").cls is MockProvider
    assert "hijack" not in registry.providers  # all of the plugin's registrations, or none
    [failure] = registry.failures
    assert failure.plugin == "hijack"
    assert "alias 'mock' of provider 'hijack' is already registered by builtin" in failure.reason


def test_an_alias_cannot_take_over_another_plugins_alias_or_name(
    registry: PluginRegistry,
) -> None:
    registry.register_plugin(aliased_module("p_a", "alpha", ("x",)), "plugin-a")
    registry.register_plugin(aliased_module("p_b", "beta", ("X",)), "plugin-b")
    registry.register_plugin(aliased_module("p_c", "gamma", ("alpha",)), "plugin-c")
    registry.register_plugin(aliased_module("p_d", "x", ()), "plugin-d")
    assert registry.provider_info("x").name == "alpha"
    assert set(registry.providers) == {"mock", "alpha"}
    reasons = {f.plugin: f.reason for f in registry.failures}
    assert (
        "alias 'x' of provider 'beta' is already registered by plugin-a (as an alias of "
        in (reasons["plugin-b"])
    )
    assert (
        "alias 'alpha' of provider 'gamma' is already registered by plugin-a (as a "
        in (reasons["plugin-c"])
    )
    assert "provider name 'x' is already registered by plugin-a" in reasons["plugin-d"]


def test_aliases_within_one_plugin_are_checked_too(registry: PluginRegistry) -> None:
    module = types.ModuleType("p_twice")

    class One(MockProvider):
        pass

    class Two(MockProvider):
        pass

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(One, name="one", aliases=("shared",))
        register(Two, name="two", aliases=("shared",))

    module.register_providers = register_providers  # type: ignore[attr-defined]
    registry.register_plugin(module, "twice")
    assert set(registry.providers) == {"mock"}
    assert "alias 'shared' of provider 'two' is already registered by twice" in (
        registry.failures[0].reason
    )


def test_aliases_must_be_names(registry: PluginRegistry) -> None:
    registry.register_plugin(aliased_module("p_str", "stringy", "st"), "stringy")
    registry.register_plugin(aliased_module("p_empty", "empty", ("",)), "empty")
    assert set(registry.providers) == {"mock"}
    assert "aliases must be a tuple of names" in registry.failures[0].reason
    assert "is not a name" in registry.failures[1].reason


def test_re_registering_the_same_class_is_not_a_conflict(registry: PluginRegistry) -> None:
    module = types.ModuleType("p_same")

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(MockProvider, name="mock", aliases=("m",))

    module.register_providers = register_providers  # type: ignore[attr-defined]
    registry.register_plugin(module, "same")
    assert registry.failures == []
    assert registry.provider_info("m").cls is MockProvider


# -- lookups say why a provider is missing (issue 12, item 15) ------------------------------


def test_a_provider_whose_plugin_failed_says_why(entry_points: list[FakeEntryPoint]) -> None:
    entry_points.append(FakeEntryPoint("broken", boom))
    registry = PluginRegistry()
    with pytest.raises(ConfigurationError) as info:
        registry.provider_info("broken")
    message = str(info.value)
    assert "plugin 'broken' (distribution orchestrator-fake) failed to load" in message
    assert "No module named 'missing_dependency'" in message
    assert "Unknown provider" not in message


def test_an_unrelated_lookup_mentions_the_load_failures(
    entry_points: list[FakeEntryPoint],
) -> None:
    entry_points.append(FakeEntryPoint("broken", boom))
    with pytest.raises(ConfigurationError, match=r"1 plugin load failure\(s\): broken"):
        PluginRegistry().provider_info("other")


def test_allow_list_names_matching_nothing_are_reported(
    entry_points: list[FakeEntryPoint],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry_points.append(FakeEntryPoint("one", lambda: plugin_module("p1", "one")))
    monkeypatch.setenv(ENV_ALLOW, "one, nosuch")
    registry = PluginRegistry()
    with caplog.at_level(logging.WARNING, logger="orchestrator.plugins"):
        registry.load()
    assert set(registry.providers) == {"mock", "one"}
    [failure] = registry.failures
    assert failure.plugin == "nosuch"
    assert "ORCHESTRATOR_PLUGINS names 'nosuch'" in failure.reason
    assert "installed: one" in failure.reason
    assert any("nosuch" in r.getMessage() for r in caplog.records)


def test_a_provider_left_out_by_the_allow_list_says_so(
    entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points.append(FakeEntryPoint("one", lambda: plugin_module("p1", "one")))
    monkeypatch.setenv(ENV_ALLOW, "")
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_PLUGINS leaves it out"):
        PluginRegistry().provider_info("one")
    monkeypatch.delenv(ENV_ALLOW)
    monkeypatch.setenv(ENV_BLOCK, "one")
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_DISABLE_PLUGINS leaves it out"):
        PluginRegistry().provider_info("one")


def test_registry_is_a_plain_class_keeping_its_state_private(registry: PluginRegistry) -> None:
    registry.load()
    text = repr(registry)
    assert text.startswith("<PluginRegistry loaded: 1 providers")
    assert "_aliases" not in text and "_lock" not in text and "PluginManager" not in text
    assert registry != PluginRegistry(entry_points=False)  # identity, not field equality
    assert not hasattr(registry, "_sources")


# -- classes named as "module:Class": imported on first use (issue 13) ----------------------


@pytest.fixture
def named_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], str]]:
    """Write a module on sys.path; forget it (and its import) after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def naming_plugin(
    target: str, name: str = "lazy", **options: Any
) -> Callable[[], types.ModuleType]:
    def load() -> types.ModuleType:
        module = types.ModuleType("p_naming")

        @orchestrator.hookimpl
        def register_providers(register: Callable[..., None]) -> None:
            register(target, name=name, **options)

        module.register_providers = register_providers  # type: ignore[attr-defined]
        return module

    return load


LAZY_PROVIDER = """
    from orchestrator.providers import MockProvider

    class LazyProvider(MockProvider):
        emulator = "lazy_emulator:App"
"""


def test_a_named_class_is_listed_without_importing_it(
    entry_points: list[FakeEntryPoint], named_module: Callable[[str, str], str]
) -> None:
    module = named_module("lazy_provider_a", LAZY_PROVIDER)
    entry_points.append(
        FakeEntryPoint(
            "lazy",
            naming_plugin(f"{module}:LazyProvider", aliases=("lz",), emulator="lazy_emulator:App"),
        )
    )
    registry = PluginRegistry()
    registry.load()
    info = registry.providers["lazy"]
    assert module not in sys.modules and not info.loaded
    assert info.class_path == f"{module}.LazyProvider" and info.class_name == "LazyProvider"
    assert info.emulator == "lazy_emulator:App" and info.aliases == ("lz",)
    assert (info.plugin, info.distribution, info.version) == ("lazy", "orchestrator-fake", "9.9")
    assert registry.provider_info("lz") is info and info.loaded
    assert info.cls is sys.modules[module].LazyProvider
    assert info.class_path == f"{module}.LazyProvider"
    assert type(registry.create_provider("lazy")) is info.cls
    assert registry.failures == []


def test_provider_class_imports_only_the_class_asked_for(
    entry_points: list[FakeEntryPoint], named_module: Callable[[str, str], str]
) -> None:
    first = named_module("lazy_provider_b", LAZY_PROVIDER)
    second = named_module("lazy_provider_c", LAZY_PROVIDER.replace("LazyProvider", "OtherProvider"))
    entry_points.append(FakeEntryPoint("one", naming_plugin(f"{first}:LazyProvider", "one")))
    entry_points.append(FakeEntryPoint("two", naming_plugin(f"{second}:OtherProvider", "two")))
    registry = PluginRegistry()
    cls = registry.provider_class("OtherProvider")
    assert cls is sys.modules[second].OtherProvider
    assert first not in sys.modules
    assert registry.provider_class("NoSuchProvider") is None


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("raise ImportError(\"No module named 'vendor_sdk'\")", "import failed: ImportError"),
        ("LazyProvider = dict", "registration failed: TypeError"),
        ("", "import failed: AttributeError"),
    ],
)
def test_a_named_class_that_fails_to_import_is_a_load_failure(
    entry_points: list[FakeEntryPoint],
    named_module: Callable[[str, str], str],
    caplog: pytest.LogCaptureFixture,
    source: str,
    reason: str,
) -> None:
    module = named_module(f"lazy_broken_{abs(hash(source))}", source)
    entry_points.append(FakeEntryPoint("lazy", naming_plugin(f"{module}:LazyProvider")))
    registry = PluginRegistry()
    registry.load()
    info = registry.providers["lazy"]
    assert registry.failures == []
    for _ in range(2):  # the second lookup says why too, and records nothing new
        with pytest.raises(ConfigurationError) as raised:
            registry.provider_info("lazy")
        message = str(raised.value)
        assert "plugin 'lazy' (distribution orchestrator-fake) failed to load" in message
        assert reason in message and "Unknown provider" not in message
    [failure] = registry.failures
    assert failure.reason.startswith(reason)
    assert (failure.plugin, failure.distribution, failure.version) == (
        "lazy",
        "orchestrator-fake",
        "9.9",
    )
    assert "lazy" not in registry.providers
    assert any("'lazy'" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigurationError, match="failed to load"):
        info.cls  # noqa: B018 - a stale info says why too
    assert len(registry.failures) == 1
    assert registry.provider_class("LazyProvider") is None


@pytest.mark.parametrize(
    ("target", "options", "reason"),
    [
        ("no_colon.LazyProvider", {}, "nor a 'package.module:Class' reference"),
        ("bad module:Lazy", {}, "nor a 'package.module:Class' reference"),
        ("mod:Lazy", {"emulator": 3}, "must be a 'module:factory' string"),
    ],
)
def test_a_bad_class_reference_is_refused_at_registration(
    entry_points: list[FakeEntryPoint], target: str, options: dict[str, Any], reason: str
) -> None:
    entry_points.append(FakeEntryPoint("bad", naming_plugin(target, **options)))
    registry = PluginRegistry()
    registry.load()
    assert set(registry.providers) == {"mock"}
    [failure] = registry.failures
    assert "register_providers raised TypeError" in failure.reason and reason in failure.reason


def test_emulator_goes_with_a_named_class_only(registry: PluginRegistry) -> None:
    module = types.ModuleType("p_emulator")

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(MockProvider, name="other", emulator="x:y")

    module.register_providers = register_providers  # type: ignore[attr-defined]
    registry.register_plugin(module, "emu")
    [failure] = registry.failures
    assert "emulator= goes with a provider named as 'module:Class'" in failure.reason


def test_the_mock_module_registered_by_hand_is_not_a_conflict(registry: PluginRegistry) -> None:
    from orchestrator.providers import mock

    registry.register_plugin(mock, "mock-module")
    assert registry.failures == []
    assert registry.provider_info("mock").cls is MockProvider


def test_provider_info_is_read_only_and_compares_by_value(registry: PluginRegistry) -> None:
    info = registry.provider_info("mock")
    with pytest.raises(AttributeError):
        info.name = "other"  # type: ignore[misc]
    assert info == registry.providers["mock"] and hash(info) == hash(registry.providers["mock"])
    assert "MockProvider" in repr(info) and "_load" not in repr(info)


def test_installed_plugins_declare_what_their_classes_say() -> None:
    """A plugin that names its class declares its emulator too: both must match the class."""
    registry = PluginRegistry()
    registry.load()
    for info in list(registry.providers.values()):
        declared = (info.class_path, info.emulator)
        cls = registry.provider_info(info.name).cls
        assert declared == (f"{cls.__module__}.{cls.__qualname__}", cls.emulator), info.name


def test_loading_the_plugins_imports_no_provider_class() -> None:
    code = (
        "import sys; from orchestrator.plugins import default_registry; "
        "default_registry().load(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore', 'pydantic') "
        "or m.endswith(('.provider', '.mock'))]; "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
