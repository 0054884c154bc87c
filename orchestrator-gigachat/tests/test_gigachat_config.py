"""Config, environment variables, plugin registration and secret hygiene."""

from __future__ import annotations

import logging

import pytest

import orchestrator_gigachat
from orchestrator.config import ProviderConfig
from orchestrator.errors import ConfigurationError, OrchestratorError, ProviderError
from orchestrator.plugins import PluginRegistry
from orchestrator.router import Router
from orchestrator.types import Message
from orchestrator_gigachat import ENV_VARS, GigaChatConfig, GigaChatProvider
from orchestrator_gigachat.auth import AccessToken, parse_expires_at
from orchestrator_gigachat.emulator import config_for


def test_public_names() -> None:
    assert set(orchestrator_gigachat.__all__) == {
        "ENV_VARS",
        "SCOPES",
        "AccessToken",
        "GigaChatConfig",
        "GigaChatModel",
        "GigaChatProvider",
        "TokenCount",
        "register_providers",
    }


def test_registered_through_the_entry_point() -> None:
    registry = PluginRegistry()
    assert registry.provider_info("gigachat").cls is GigaChatProvider
    provider = registry.create_provider("gigachat", api_key="a-key-value")
    assert isinstance(provider, GigaChatProvider) and provider.name == "gigachat"
    from orchestrator.providers import GigaChatProvider as FromCore

    assert FromCore is GigaChatProvider
    assert GigaChatProvider.emulator == "orchestrator_gigachat.emulator:GigaChatEmulator"


def test_guide_style_config_is_upgraded() -> None:
    provider = GigaChatProvider(
        ProviderConfig(name="giga", api_key="key-1234", model="GigaChat-2-Max")
    )
    assert isinstance(provider.config, GigaChatConfig)
    assert provider.config.scope == "GIGACHAT_API_PERS"
    assert provider.config.base_url == "https://gigachat.devices.sberbank.ru/api/v1"
    assert provider.config.model == "GigaChat-2-Max"
    none = GigaChatConfig(base_url=None, api_key="key-1234", name="g")
    assert GigaChatProvider(none).config.base_url == GigaChatProvider.DEFAULT_BASE_URL


def test_every_setting_reads_its_env_var(monkeypatch, tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    values = {
        "GIGACHAT_CREDENTIALS": "env-key-value",
        "GIGACHAT_SCOPE": "b2b",
        "GIGACHAT_BASE_URL": "https://example.test/api/v1/",
        "GIGACHAT_AUTH_URL": "https://example.test/oauth",
        "GIGACHAT_MODEL": "GigaChat-2-Pro",
        "GIGACHAT_ACCESS_TOKEN": "env-token-value",
        "GIGACHAT_USER": "env-user",
        "GIGACHAT_PASSWORD": "env-password",
        "GIGACHAT_VERIFY_SSL_CERTS": "false",
        "GIGACHAT_CA_BUNDLE_FILE": str(ca),
        "GIGACHAT_CERT_FILE": "/c.pem",
        "GIGACHAT_KEY_FILE": "/k.pem",
        "GIGACHAT_KEY_FILE_PASSWORD": "env-key-pass",
        "GIGACHAT_TIMEOUT": "12.5",
    }
    assert set(values) == set(ENV_VARS.values())
    for var, value in values.items():
        monkeypatch.setenv(var, value)
    config = GigaChatConfig()
    assert config.api_key == "env-key-value"
    assert config.scope == "GIGACHAT_API_B2B"
    assert config.base_url == "https://example.test/api/v1"
    assert config.model == "GigaChat-2-Pro"
    assert config.access_token == "env-token-value"
    assert (config.user, config.password) == ("env-user", "env-password")
    assert config.verify_ssl is False
    assert config.ca_bundle_file == str(ca)
    assert config.key_file_password == "env-key-pass"
    assert config.timeout == 12.5
    assert GigaChatConfig(model="explicit").model == "explicit"
    assert GigaChatConfig(access_token=None).access_token is None
    config.model = "GigaChat-2"  # assignment does not re-read the environment
    assert config.api_key == "env-key-value"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="scope"):
        GigaChatConfig(scope="GIGACHAT_API_NOPE")
    with pytest.raises(ValueError, match="http"):
        GigaChatConfig(base_url="ftp://x")
    assert GigaChatConfig(scope="corp").scope == "GIGACHAT_API_CORP"


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        ("scope", "BOGUS", "PERS, B2B or CORP"),
        ("timeout", "abc", "a number above 0"),
        ("timeout", "0", "a number above 0"),
        ("verify_ssl", "maybe", "true or false"),
        ("base_url", "not-a-url", "http:// or https:// URL"),
        ("base_url", "https://host:port", "http:// or https:// URL"),
        ("auth_url", "ngw.example:9443", "http:// or https:// URL"),
    ],
)
def test_a_bad_environment_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str, fix: str
) -> None:
    var = ENV_VARS[field]
    monkeypatch.setenv("GIGACHAT_CREDENTIALS", "a2V5OnNlY3JldA==")
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError) as info:
        GigaChatProvider.config_from_env("gigachat")
    message = str(info.value)
    assert message.startswith(f"{var}={value!r} is not valid")
    assert fix in message and f"unset {var}" in message
    assert "a2V5OnNlY3JldA==" not in message
    # The same value given explicitly is reported as the field, not the variable.
    with pytest.raises(ValueError, match=field) as explicit:
        GigaChatConfig(name="g", **{field: value})
    assert var not in str(explicit.value)


def test_no_credentials_is_a_configuration_error(monkeypatch) -> None:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigurationError, match="GIGACHAT_CREDENTIALS"):
        GigaChatProvider(GigaChatConfig())


def test_expires_at_units() -> None:
    assert parse_expires_at(1706026848841) == pytest.approx(1706026848.841)
    assert parse_expires_at(1706026848) == 1706026848
    assert "secret" not in repr(AccessToken(value="secret-token-1"))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_secrets_never_in_logs_reprs_or_errors(make_provider, emulator, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    key = emulator.authorization_key
    provider = make_provider(max_retries=1, backoff_base=0, backoff_max=0)
    texts: list[str] = []
    await provider.chat([Message("user", "hello")])
    token = provider.tokens.current()
    assert token is not None
    emulator.fail_next(500, message=f"echo {key} {token.value}")  # a vendor echoing secrets
    await provider.chat([Message("user", "again")])
    emulator.fail_next(401, times=2, message=f"bad token {token.value}")
    errors: list[BaseException] = []
    try:
        await provider.chat([Message("user", "x")])
    except ProviderError as exc:
        errors.append(exc)
    bad = make_provider(api_key="d3Jvbmc6c2VjcmV0LWtleQ==")
    try:
        await bad.chat([Message("user", "x")])
    except ProviderError as exc:
        errors.append(exc)
    router = Router(strategy="round-robin")
    router.add_provider(bad)
    try:
        await router.route("x")
    except OrchestratorError as exc:
        errors.append(exc)
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [
        repr(provider),
        repr(provider.config),
        str(provider.config.model_dump()),
        provider.config.model_dump_json(),
        repr(token),
    ]
    texts += [r.getMessage() for r in caplog.records]
    assert len(errors) == 3
    blob = "\n".join(texts)
    for secret in (key, str(token.value), "d3Jvbmc6c2VjcmV0LWtleQ=="):
        assert secret not in blob


@pytest.mark.anyio
async def test_router_routes_to_gigachat(server) -> None:
    router = Router(strategy="round-robin")
    router.add_provider(GigaChatProvider(config_for(server)))
    assert await router.route("Hello") == "GigaChat emulator: Hello"


def test_config_from_env_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator_gigachat import GigaChatProvider

    for var in (
        "GIGACHAT_CREDENTIALS",
        "GIGACHAT_ACCESS_TOKEN",
        "GIGACHAT_USER",
        "GIGACHAT_PASSWORD",
    ):
        monkeypatch.delenv(var, raising=False)
    assert GigaChatProvider.config_from_env("gigachat") is None
    monkeypatch.setenv("GIGACHAT_USER", "u")
    assert GigaChatProvider.config_from_env("gigachat") is None
    monkeypatch.setenv("GIGACHAT_PASSWORD", "p-secret")
    config = GigaChatProvider.config_from_env("gigachat")
    assert config is not None and config.user == "u"
    monkeypatch.delenv("GIGACHAT_USER")
    monkeypatch.setenv("GIGACHAT_CREDENTIALS", "a2V5OnNlY3JldA==")
    config = GigaChatProvider.config_from_env("giga")
    assert config is not None and config.name == "giga" and config.api_key == "a2V5OnNlY3JldA=="
