"""Configuration files, dicts and the environment -> a Router; errors point at key and line."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import orchestrator
from orchestrator import Router
from orchestrator.config import ProviderConfig
from orchestrator.errors import ConfigurationError, NoProvidersError
from orchestrator.health import BreakerConfig
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.settings import (
    BreakerSettings,
    RouterSettings,
    load_settings,
    reference_markdown,
    router_from_config,
    router_from_env,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "orchestrator.toml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


def test_file_builds_router(write: Callable[[str], Path], registry: PluginRegistry) -> None:
    path = write(
        """
        strategy = "first-available"
        deadline = 12.5

        [breaker]
        cooldown = 2
        consecutive_failures = 2

        [providers.primary]
        type = "mock"
        response = "from primary"
        timeout = 5
        priority = 1

        [providers.backup]
        type = "mock"
        weight = 3
        priority = 0
        """
    )
    router = router_from_config(path, registry=registry)
    assert [p.config.name for p in router.providers] == ["primary", "backup"]
    assert router.strategy_name == "first-available"
    assert router.deadline == 12.5
    assert router.breaker_config == BreakerConfig(cooldown=2, consecutive_failures=2)
    primary = router.get_provider("primary")
    assert isinstance(primary, MockProvider)
    assert primary.config.response == "from primary"
    assert primary.config.timeout == 5
    slots = {slot.name: slot for slot in router._slots}
    assert slots["backup"].weight == 3
    assert (slots["primary"].priority, slots["backup"].priority) == (1, 0)


def test_type_defaults_to_table_name(registry: PluginRegistry) -> None:
    router = router_from_config({"providers": {"mock": {}}}, registry=registry)
    assert isinstance(router.get_provider("mock"), MockProvider)


def test_router_classmethods_delegate(write: Callable[[str], Path]) -> None:
    path = write('[providers.mock]\nresponse = "hi"\n')
    router = Router.from_config(path)
    assert router.get_provider("mock").config.response == "hi"  # type: ignore[attr-defined]
    router = Router.from_config(str(path))
    assert router.providers


def test_default_priority_is_file_order(registry: PluginRegistry) -> None:
    router = router_from_config(
        {"providers": {"a": {"type": "mock"}, "b": {"type": "mock"}}}, registry=registry
    )
    assert [slot.priority for slot in router._slots] == [0, 1]


@pytest.mark.anyio
async def test_configured_router_answers(registry: PluginRegistry) -> None:
    router = router_from_config(
        {"providers": {"m": {"type": "mock", "response": "configured"}}}, registry=registry
    )
    assert await router.route("hi") == "configured"


# -- ${ENV} references ----------------------------------------------------------------------


def test_env_reference_is_expanded(
    write: Callable[[str], Path], registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_KEY", "sk-from-environment-123")
    monkeypatch.setenv("MOCK_HOST", "example.test")
    path = write(
        """
        [providers.m]
        type = "mock"
        api_key = "${MOCK_KEY}"
        base_url = "https://${MOCK_HOST}/v1"
        model = "${MOCK_MODEL:-mock-large}"
        """
    )
    router = router_from_config(path, registry=registry)
    config = router.get_provider("m").config
    assert config.api_key == "sk-from-environment-123"
    assert config.base_url == "https://example.test/v1"
    assert config.model == "mock-large"
    assert "sk-from-environment-123" not in repr(config)


def test_missing_env_var_names_var_key_and_line(
    write: Callable[[str], Path], registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(
        """
        [providers.m]
        type = "mock"

        api_key = "${NOT_SET_ANYWHERE}"
        """
    )
    with pytest.raises(ConfigurationError) as info:
        router_from_config(path, registry=registry)
    message = str(info.value)
    assert "NOT_SET_ANYWHERE" in message
    assert "providers.m.api_key" in message
    assert f"{path}:4" in message


def test_empty_env_var_uses_default(
    registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMPTY_MODEL", "")
    router = router_from_config(
        {"providers": {"m": {"type": "mock", "model": "${EMPTY_MODEL:-fallback}"}}},
        registry=registry,
    )
    assert router.get_provider("m").config.model == "fallback"


def test_env_references_inside_lists(
    registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_ANSWER", "listed")
    _settings, providers = load_settings(
        {"providers": {"m": {"type": "mock", "response": "${MOCK_ANSWER}"}}},
        registry=registry,
        env={"MOCK_ANSWER": "from-given-env"},
    )
    assert providers["m"][0].response == "from-given-env"  # type: ignore[attr-defined]
    from orchestrator.settings import _expand, _Source

    assert _expand(["${MOCK_ANSWER}", 1], (), _Source(), {"MOCK_ANSWER": "x"}) == ["x", 1]


def test_literal_secret_in_file_is_rejected(
    write: Callable[[str], Path], registry: PluginRegistry
) -> None:
    path = write('[providers.m]\ntype = "mock"\napi_key = "sk-literal-in-file"\n')
    with pytest.raises(ConfigurationError) as info:
        router_from_config(path, registry=registry)
    message = str(info.value)
    assert "providers.m.api_key" in message and ":3)" in message
    assert "never stored in the file" in message
    assert "sk-literal-in-file" not in message


def test_literal_secret_in_dict_is_allowed(registry: PluginRegistry) -> None:
    router = router_from_config(
        {"providers": {"m": {"type": "mock", "api_key": "sk-given-in-code"}}}, registry=registry
    )
    assert router.get_provider("m").config.api_key == "sk-given-in-code"


# -- errors -------------------------------------------------------------------------------------


def test_unknown_provider_lists_installed_and_package(
    write: Callable[[str], Path], registry: PluginRegistry
) -> None:
    path = write('strategy = "round-robin"\n\n[providers.giga]\ntype = "gigachat"\n')
    with pytest.raises(ConfigurationError) as info:
        router_from_config(path, registry=registry)
    message = str(info.value)
    assert "providers.giga.type" in message and ":4)" in message
    assert "pip install orchestrator-gigachat" in message
    assert "Installed providers: mock" in message


def test_unknown_provider_by_table_name(registry: PluginRegistry) -> None:
    with pytest.raises(ConfigurationError, match=r"providers\.acme: Unknown provider 'acme'"):
        router_from_config({"providers": {"acme": {}}}, registry=registry)


def test_bad_value_points_at_key_and_line(
    write: Callable[[str], Path], registry: PluginRegistry
) -> None:
    path = write(
        """
        # comment
        [providers.m]
        type = "mock"
        response = "ok"
        timeout = -1
        """
    )
    with pytest.raises(ConfigurationError) as info:
        router_from_config(path, registry=registry)
    message = str(info.value)
    assert message.startswith(f"providers.m.timeout ({path}:5)")
    assert "greater than 0" in message
    assert "-1" not in message.split(":", 2)[-1]  # the rejected value is not echoed


def test_several_errors_are_all_listed(registry: PluginRegistry) -> None:
    with pytest.raises(ConfigurationError) as info:
        router_from_config(
            {"providers": {"m": {"type": "mock", "timeout": 0, "max_retries": -1}}},
            registry=registry,
        )
    message = str(info.value)
    assert "providers.m.timeout" in message and "providers.m.max_retries" in message


def test_unknown_keys_are_rejected(write: Callable[[str], Path], registry: PluginRegistry) -> None:
    path = write('stratgy = "random"\n[providers.m]\ntype = "mock"\n')
    with pytest.raises(ConfigurationError, match=r"stratgy \(.*:1\): unknown key"):
        router_from_config(path, registry=registry)
    with pytest.raises(ConfigurationError, match=r"providers\.m\.tiemout: unknown key"):
        router_from_config({"providers": {"m": {"type": "mock", "tiemout": 3}}}, registry=registry)


def test_bad_breaker_and_routing_values(
    write: Callable[[str], Path], registry: PluginRegistry
) -> None:
    path = write("[breaker]\ncooldown = 5\n\n[providers.m]\ntype = 'mock'\nweight = -2\n")
    with pytest.raises(ConfigurationError, match=r"providers\.m\.weight \(.*:6\)"):
        router_from_config(path, registry=registry)
    path = write("[breaker]\nfailure_rate = 7\n\n[providers.m]\ntype = 'mock'\n")
    with pytest.raises(ConfigurationError, match=r"breaker \(.*:1\).*failure_rate"):
        router_from_config(path, registry=registry)


def test_unknown_strategy(write: Callable[[str], Path], registry: PluginRegistry) -> None:
    path = write('[providers.m]\ntype = "mock"\n')
    path.write_text('# a comment\nstrategy = "fastest"\n' + path.read_text())
    with pytest.raises(ConfigurationError, match=r"strategy \(.*:2\): Unknown strategy 'fastest'"):
        router_from_config(path, registry=registry)


def test_provider_must_be_a_table(registry: PluginRegistry) -> None:
    with pytest.raises(ConfigurationError, match=r"providers\.m"):
        router_from_config({"providers": {"m": "mock"}}, registry=registry)


def test_no_providers(registry: PluginRegistry) -> None:
    with pytest.raises(ConfigurationError, match=r"No providers configured"):
        router_from_config({"strategy": "random"}, registry=registry)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        router_from_config(tmp_path / "absent.toml")


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Cannot read"):
        router_from_config(tmp_path)


def test_invalid_toml(write: Callable[[str], Path]) -> None:
    path = write("[providers.m\ntype = 'mock'\n")
    with pytest.raises(ConfigurationError, match=r"invalid TOML.*line 1"):
        router_from_config(path)


def test_line_lookup_handles_dotted_quoted_and_multiline(
    write: Callable[[str], Path], registry: PluginRegistry
) -> None:
    path = write(
        '''
        [providers]
        "m".type = "mock"
        m.response = """
        timeout = 3
        """
        m.timeout = 0
        '''
    )
    with pytest.raises(ConfigurationError) as info:
        router_from_config(path, registry=registry)
    assert f"providers.m.timeout ({path}:6)" in str(info.value)


def test_secrets_never_in_errors_or_logs(
    write: Callable[[str], Path],
    registry: PluginRegistry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-very-secret-value-42"
    monkeypatch.setenv("MOCK_SECRET", secret)
    caplog.set_level(logging.DEBUG)
    path = write(
        """
        [providers.m]
        type = "mock"
        api_key = "${MOCK_SECRET}"
        timeout = "${MOCK_SECRET}"
        """
    )
    with pytest.raises(ConfigurationError) as info:
        router_from_config(path, registry=registry)
    texts = [str(info.value), repr(info.value), caplog.text]
    router = router_from_config(
        {"providers": {"m": {"type": "mock", "api_key": "${MOCK_SECRET}"}}}, registry=registry
    )
    texts += [repr(router.get_provider("m").config), str(router.stats())]
    assert all(secret not in text for text in texts)


# -- from the environment ------------------------------------------------------------------


class EnvProvider(MockProvider):
    """A mock that reads ENVMOCK_KEY, like a vendor reading its SDK's variables."""

    @classmethod
    def config_from_env(cls, name: str) -> ProviderConfig | None:
        import os

        key = os.environ.get("ENVMOCK_KEY")
        return None if key is None else MockConfig(name=name, api_key=key, response="env")


@pytest.fixture
def env_registry() -> PluginRegistry:
    registry = PluginRegistry(entry_points=False)

    class Plugin:
        @orchestrator.hookimpl
        def register_providers(self, register: Callable[..., None]) -> None:
            register(EnvProvider, name="envmock")

    registry.register_plugin(Plugin(), name="env-plugin")
    return registry


def test_from_env_uses_providers_with_credentials(
    env_registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVMOCK_KEY", "sk-env-key-0001")
    router = router_from_env(registry=env_registry, strategy="random", deadline=3)
    assert [p.config.name for p in router.providers] == ["envmock"]
    assert router.strategy_name == "random" and router.deadline == 3


def test_from_env_without_credentials(
    env_registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVMOCK_KEY", raising=False)
    with pytest.raises(NoProvidersError) as info:
        router_from_env(registry=env_registry)
    message = str(info.value)
    assert "envmock" in message and "GIGACHAT_CREDENTIALS" in message and "YC_API_KEY" in message


def test_from_env_leaves_out_a_named_class_that_fails_to_import(
    env_registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin may name its class (``module:Class``) to import it on first use; one that
    fails to import then is left out and recorded, as a plugin that failed to load was."""

    class Named:
        @orchestrator.hookimpl
        def register_providers(self, register: Callable[..., None]) -> None:
            register("settings_no_such_module:Provider", name="broken")

    env_registry.register_plugin(Named(), name="named-plugin")
    monkeypatch.setenv("ENVMOCK_KEY", "sk-env-key-0002")
    router = router_from_env(registry=env_registry)
    assert [p.config.name for p in router.providers] == ["envmock"]
    assert "broken" not in env_registry.providers
    [failure] = env_registry.failures
    assert failure.plugin == "named-plugin" and "settings_no_such_module" in failure.reason


@pytest.mark.usefixtures("no_vendor_credentials")
def test_router_from_env_classmethod(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NoProvidersError):
        Router.from_env()
    monkeypatch.setenv("GIGACHAT_CREDENTIALS", "ZW52OmVudg==")
    monkeypatch.setenv("YC_API_KEY", "AQVN-from-env")
    monkeypatch.setenv("YC_FOLDER_ID", "b1g-from-env")
    router = Router.from_env()
    assert sorted(p.config.name for p in router.providers) == ["gigachat", "yandexgpt"]


def test_base_provider_declares_no_env_config() -> None:
    assert MockProvider.config_from_env("mock") is None


# -- models and the generated reference ---------------------------------------------------


def test_breaker_settings_mirror_breaker_config() -> None:
    import dataclasses

    assert set(BreakerSettings.model_fields) == {f.name for f in dataclasses.fields(BreakerConfig)}
    assert BreakerSettings().model_dump() == dataclasses.asdict(BreakerConfig())


def test_router_settings_defaults() -> None:
    settings = RouterSettings()
    assert settings.strategy == "round-robin" and settings.providers == {}


def test_reference_lists_every_field(registry: PluginRegistry) -> None:
    text = reference_markdown(registry)
    for name in (*RouterSettings.model_fields, *BreakerSettings.model_fields, "weight", "mode"):
        assert f"`{name}`" in text
    assert "secret: use ${ENV_VAR}" in text
    assert '`"round-robin"`' in text and "`true`" in text and "unset" in text


def test_checked_in_reference_is_current() -> None:
    """docs/configuration.md embeds the generated reference; regenerate it with
    ``python -m orchestrator.settings docs/configuration.md``."""
    import importlib.util

    if not all(
        importlib.util.find_spec(m) for m in ("orchestrator_gigachat", "orchestrator_yandexgpt")
    ):
        pytest.skip("the reference covers the GigaChat and YandexGPT plugins: install both")
    from orchestrator.settings import BEGIN_MARK, END_MARK

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    current = page.split(BEGIN_MARK, 1)[1].split(END_MARK, 1)[0]
    assert current.strip() == reference_markdown().strip(), (
        "docs/configuration.md is stale: run `python -m orchestrator.settings "
        "docs/configuration.md`"
    )


def test_regenerate_reference(tmp_path: Path) -> None:
    from orchestrator.settings import BEGIN_MARK, END_MARK, main

    page = tmp_path / "configuration.md"
    page.write_text(f"# Title\n\n{BEGIN_MARK}\nold\n{END_MARK}\n\nafter\n", encoding="utf-8")
    assert main([str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "\nold\n" not in text and "## Top level" in text and text.endswith("after\n")
    page.write_text("no markers\n", encoding="utf-8")
    assert main([str(page)]) == 1
    assert main([]) == 2


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGACHAT_CREDENTIALS", "ZXhhbXBsZTpleGFtcGxl")
    monkeypatch.setenv("YC_API_KEY", "AQVN-example-key")
    monkeypatch.setenv("YC_FOLDER_ID", "b1gexamplefolder")
    router = router_from_config(ROOT / "examples" / "orchestrator.toml")
    assert {p.config.name for p in router.providers} >= {"gigachat", "yandexgpt"}


def test_limits_prices_timeouts_and_budgets(
    write: Callable[[str], Path], registry: PluginRegistry
) -> None:
    from decimal import Decimal

    from orchestrator.limits import ProviderLimits
    from orchestrator.pricing import Price

    path = write(
        """
        first_chunk_timeout = 4
        hedge_after = "p95"
        on_limit = "wait"
        budget = "100.50"

        [providers.m]
        type = "mock"
        timeout = 20
        attempt_timeout = 8
        first_chunk_timeout = 2
        budget = 10

        [providers.m.limits]
        max_in_flight = 4
        requests_per_minute = 60

        [providers.m.prices."*"]
        prompt = "0.2"
        completion = 0.4
        """
    )
    router = router_from_config(path, registry=registry)
    assert router.first_chunk_timeout == 4 and router.hedge_after == "p95"
    assert router.on_limit == "wait" and router.budget == Decimal("100.50")
    slot = router._slots[0]
    assert slot.provider.config.timeout == 20  # the HTTP timeout stays the provider's
    assert slot.timeout == 8 and slot.first_chunk_timeout == 2
    assert slot.budget == Decimal(10)
    assert slot.limits is not None and slot.limits.limits == ProviderLimits(4, 60, None)
    assert slot.prices == {"*": Price("0.2", "0.4")}


def test_bad_limit_and_price(write: Callable[[str], Path], registry: PluginRegistry) -> None:
    path = write("[providers.m]\ntype = 'mock'\n[providers.m.limits]\nmax_in_flight = 0\n")
    with pytest.raises(ConfigurationError, match=r"providers\.m\.limits\.max_in_flight \(.*:4\)"):
        router_from_config(path, registry=registry)
    path = write("[providers.m]\ntype = 'mock'\n[providers.m.prices.lite]\nprompt = -1\n")
    with pytest.raises(ConfigurationError) as info:
        router_from_config(path, registry=registry)
    assert "providers.m.prices.lite.prompt" in str(info.value)
    assert "providers.m.prices.lite.completion" in str(info.value)
