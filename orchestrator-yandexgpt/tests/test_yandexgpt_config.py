"""Configuration, environment, model URIs and request building: no network."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.config import ProviderConfig
from orchestrator.errors import ConfigurationError, InvalidRequestError
from orchestrator.plugins import PluginRegistry
from orchestrator.types import GenerationParams, Message
from orchestrator_yandexgpt import YandexGPTConfig, YandexGPTProvider
from orchestrator_yandexgpt.config import DEFAULT_BASE_URL
from orchestrator_yandexgpt.emulator import YandexGPTEmulator
from orchestrator_yandexgpt.provider import cumulative_delta, model_uri

FOLDER = "b1gfolder"


def provider(environ: dict[str, str] | None = None, **settings: Any) -> YandexGPTProvider:
    settings.setdefault("name", "y")
    return YandexGPTProvider(YandexGPTConfig(**settings), environ=environ or {})


def test_registered_through_the_entry_point() -> None:
    registry = PluginRegistry()
    info = registry.provider_info("yandexgpt")
    assert info.cls is YandexGPTProvider
    made = registry.create_provider("yandexgpt", api_key="AQVN-x", folder_id=FOLDER)
    assert isinstance(made, YandexGPTProvider)
    assert YandexGPTProvider.emulator == "orchestrator_yandexgpt.emulator:YandexGPTEmulator"


def test_guide_style_config_is_upgraded() -> None:
    made = YandexGPTProvider(
        ProviderConfig(name="y", api_key="AQVN-key", model="yandexgpt"),
        environ={"YC_FOLDER_ID": FOLDER},
    )
    assert isinstance(made.config, YandexGPTConfig)
    assert made.model_uri == f"gpt://{FOLDER}/yandexgpt/latest"
    assert made.auth_mode == "api_key"
    assert made.base_url == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (None, f"gpt://{FOLDER}/yandexgpt-lite/latest"),
        ("yandexgpt-lite", f"gpt://{FOLDER}/yandexgpt-lite/latest"),
        ("yandexgpt", f"gpt://{FOLDER}/yandexgpt/latest"),
        ("llama-lite/rc", f"gpt://{FOLDER}/llama-lite/rc"),
        ("llama/deprecated", f"gpt://{FOLDER}/llama/deprecated"),
        ("gpt://other/yandexgpt/latest", "gpt://other/yandexgpt/latest"),
        ("gpt://f/yandexgpt-lite/latest@tamr1x", "gpt://f/yandexgpt-lite/latest@tamr1x"),
    ],
)
def test_model_uri_expansion(model: str | None, expected: str) -> None:
    assert model_uri(model, FOLDER) == expected


@pytest.mark.parametrize("model", ["yandexgpt/v2", "bad model", "/latest", "a/b/c"])
def test_bad_model_names_are_rejected(model: str) -> None:
    with pytest.raises(ConfigurationError, match="short name"):
        model_uri(model, FOLDER)


def test_missing_credential_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="YC_API_KEY") as caught:
        provider(folder_id=FOLDER)
    assert "api_key=" in str(caught.value)


def test_missing_folder_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="YC_FOLDER_ID") as caught:
        provider(api_key="AQVN-key")
    assert "folder_id=" in str(caught.value)


def test_folder_taken_from_a_full_model_uri() -> None:
    made = provider(api_key="AQVN-key", model="gpt://b1gfromuri/yandexgpt/latest")
    assert made.folder_id == "b1gfromuri"


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        ({"YC_API_KEY": "AQVN-a", "YC_IAM_TOKEN": "t1.b"}, "api_key"),
        ({"YC_IAM_TOKEN": "t1.b"}, "iam_token"),
        ({"YC_OAUTH_TOKEN": "y0_c"}, "oauth_token"),
        ({"YC_TOKEN": "t1.iam-token"}, "iam_token"),
        ({"YC_TOKEN": "y0_oauth-token"}, "oauth_token"),
        (
            {"YC_API_KEY": "AQVN-a", "YC_IAM_TOKEN": "t1.b", "YANDEXGPT_AUTH": "iam_token"},
            "iam_token",
        ),
    ],
)
def test_credentials_from_the_environment(environ: dict[str, str], mode: str) -> None:
    environ = {**environ, "YC_FOLDER_ID": FOLDER}
    made = provider(environ)
    assert made.auth_mode == mode
    assert made.folder_id == FOLDER


def test_config_wins_over_environment() -> None:
    made = provider(
        {"YC_API_KEY": "AQVN-env", "YC_FOLDER_ID": "b1genv"},
        iam_token="t1.config",
        folder_id=FOLDER,
    )
    assert made.auth_mode == "iam_token"
    assert made.folder_id == FOLDER


def test_service_account_key_file_from_environment(tmp_path: Any) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(YandexGPTEmulator().create_service_account_key())
    made = provider({"YC_SERVICE_ACCOUNT_KEY_FILE": str(key_file), "YC_FOLDER_ID": FOLDER})
    assert made.auth_mode == "service_account_key"


def test_unreadable_key_file() -> None:
    with pytest.raises(ConfigurationError, match="Cannot read"):
        provider(service_account_key_file="/nonexistent/key.json", folder_id=FOLDER)


def test_auth_mode_without_its_credential() -> None:
    with pytest.raises(ConfigurationError, match="oauth_token is not set"):
        provider(auth="oauth_token", api_key="AQVN-key", folder_id=FOLDER)
    with pytest.raises(ConfigurationError, match="service_account_key_file is not set"):
        provider(auth="service_account_key", api_key="AQVN-key", folder_id=FOLDER)


def test_bad_auth_env_value() -> None:
    with pytest.raises(ConfigurationError, match="YANDEXGPT_AUTH"):
        provider({"YANDEXGPT_AUTH": "password", "YC_API_KEY": "AQVN-a"}, folder_id=FOLDER)


@pytest.mark.parametrize(
    ("value", "base"),
    [
        ("https://proxy.example/", "https://proxy.example"),
        ("http://127.0.0.1:8080/llm", "http://127.0.0.1:8080/llm"),
    ],
)
def test_base_url_from_our_own_variable(value: str, base: str) -> None:
    made = provider({"YANDEXGPT_BASE_URL": value}, api_key="AQVN-k", folder_id=FOLDER)
    assert made.base_url == base
    config = YandexGPTProvider.config_from_env(
        "y", environ={"YANDEXGPT_BASE_URL": value, "YC_API_KEY": "AQVN-k", "YC_FOLDER_ID": FOLDER}
    )
    assert config is not None and config.base_url == base


@pytest.mark.parametrize("value", ["api.cloud.yandex.net:443", "::::", "https://x.example"])
def test_yc_api_endpoint_is_not_the_rest_host(value: str) -> None:
    """Yandex's SDKs read YC_API_ENDPOINT as their gRPC discovery host; it is never used as
    the REST base URL (whatever it holds, even garbage)."""
    environ = {"YC_API_ENDPOINT": value, "YC_API_KEY": "AQVN-k", "YC_FOLDER_ID": FOLDER}
    assert provider(environ, api_key="AQVN-k", folder_id=FOLDER).base_url == DEFAULT_BASE_URL
    config = YandexGPTProvider.config_from_env("y", environ=environ)
    assert config is not None and config.base_url is None


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({"YANDEXGPT_BASE_URL": "not-a-url"}, "YANDEXGPT_BASE_URL='not-a-url'"),
        ({"YANDEXGPT_BASE_URL": "https://host:port"}, "YANDEXGPT_BASE_URL='https://host:port'"),
        ({"YC_FOLDER_ID": "my folder"}, "YC_FOLDER_ID='my folder' is not a folder id"),
        ({"YANDEXGPT_AUTH": "password"}, "YANDEXGPT_AUTH='password'"),
        ({"YC_SERVICE_ACCOUNT_KEY_FILE": "/nonexistent/key.json"}, "YC_SERVICE_ACCOUNT_KEY_FILE"),
    ],
)
def test_a_bad_environment_value_is_a_configuration_error(
    environ: dict[str, str], match: str
) -> None:
    environ = {"YC_FOLDER_ID": FOLDER, **environ}
    if "YC_SERVICE_ACCOUNT_KEY_FILE" not in environ:
        environ["YC_API_KEY"] = "AQVN-k"
    with pytest.raises(ConfigurationError, match=match):
        YandexGPTProvider.config_from_env("y", environ=environ)


@pytest.mark.parametrize("field", ["base_url", "iam_url", "operation_url"])
def test_urls_in_the_config_are_checked(field: str) -> None:
    with pytest.raises(ValueError, match="http:// or https:// URL"):
        YandexGPTConfig(name="y", **{field: "llm.example"})
    with pytest.raises(ValueError, match="not a URL"):
        YandexGPTConfig(name="y", **{field: "https://[::1"})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (GenerationParams(temperature=1.5), "temperature from 0 to 1"),
        (GenerationParams(top_p=0.5), "top_p"),
        (GenerationParams(stop=["END"]), "stop"),
    ],
)
def test_unsupported_params_are_rejected_before_any_network(
    params: GenerationParams, match: str
) -> None:
    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    made = YandexGPTProvider(
        YandexGPTConfig(name="y", api_key="AQVN-k", folder_id=FOLDER),
        transport=httpx.MockTransport(no_network),
        environ={},
    )
    with pytest.raises(InvalidRequestError, match=match):
        made.validate_params(params)
    with pytest.raises(InvalidRequestError, match=match):
        made.build_request([Message("user", "x")], params)


def test_temperature_boundaries_are_accepted() -> None:
    made = provider(api_key="AQVN-k", folder_id=FOLDER)
    body = made.build_request([Message("user", "x")], GenerationParams(temperature=1.0))
    assert body["completionOptions"]["temperature"] == 1.0
    body = made.build_request([Message("user", "x")], GenerationParams(temperature=0.0))
    assert body["completionOptions"]["temperature"] == 0.0


def test_bad_messages_are_rejected() -> None:
    made = provider(api_key="AQVN-k", folder_id=FOLDER)
    with pytest.raises(InvalidRequestError, match="at least one"):
        made.build_request([])
    with pytest.raises(InvalidRequestError, match="belong on a tool message"):
        made.build_request([{"role": "user", "content": "x", "name": "bob"}])  # type: ignore[list-item]
    with pytest.raises(InvalidRequestError, match="unsupported keys"):
        made.build_request([{"role": "user", "content": "x", "author": "bob"}])  # type: ignore[list-item]


def test_repr_shows_no_secret() -> None:
    made = provider(api_key="AQVN-super-secret-key", folder_id=FOLDER)
    assert "AQVN-super-secret-key" not in repr(made)
    assert "AQVN-super-secret-key" not in repr(made.config)
    assert "AQVN-super-secret-key" not in repr(made.credentials)
    assert "AQVN-super-secret-key" not in json.dumps(made.config.model_dump())


@given(st.text(), st.text())
def test_cumulative_delta_reassembles(prefix: str, suffix: str) -> None:
    assert prefix + cumulative_delta(prefix, prefix + suffix) == prefix + suffix


def test_cumulative_delta_rejects_rewrites() -> None:
    with pytest.raises(ValueError, match="does not extend"):
        cumulative_delta("hello", "help")


def test_config_from_env_none_without_credentials() -> None:
    assert YandexGPTProvider.config_from_env("yandexgpt", environ={}) is None
    assert YandexGPTProvider.config_from_env("yandexgpt", environ={"YC_FOLDER_ID": "b1g"}) is None


def test_config_from_env_warns_when_the_folder_is_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert YandexGPTProvider.config_from_env("y", environ={"YC_API_KEY": "AQVN-k"}) is None
    assert "YC_FOLDER_ID" in caplog.text
    assert "AQVN-k" not in caplog.text


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"YC_API_KEY": "AQVN-k"}, "api_key"),
        ({"YC_IAM_TOKEN": "t1.k"}, "iam_token"),
        ({"YC_OAUTH_TOKEN": "y0_k"}, "oauth_token"),
    ],
)
def test_config_from_env(environ: dict[str, str], field: str) -> None:
    environ = {**environ, "YC_FOLDER_ID": FOLDER, "YANDEXGPT_BASE_URL": "https://llm.example/"}
    config = YandexGPTProvider.config_from_env("yandexgpt", environ=environ)
    assert config is not None
    assert config.auth == field
    assert getattr(config, field) == next(iter(environ.values()))
    assert config.folder_id == FOLDER
    assert config.base_url == "https://llm.example"
    made = YandexGPTProvider(config, environ={})
    assert made.auth_mode == field


def test_config_from_env_reads_the_key_file(tmp_path: Any) -> None:
    key = YandexGPTEmulator().create_service_account_key()
    key_file = tmp_path / "key.json"
    key_file.write_text(key)
    environ = {"YC_SERVICE_ACCOUNT_KEY_FILE": str(key_file), "YC_FOLDER_ID": FOLDER}
    config = YandexGPTProvider.config_from_env("yandexgpt", environ=environ)
    assert config is not None
    assert config.service_account_key == key
    assert key not in repr(config)


def test_router_from_env_finds_yandexgpt(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.settings import router_from_env

    for name in ("GIGACHAT_CREDENTIALS", "YC_IAM_TOKEN", "YC_OAUTH_TOKEN", "YC_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YC_API_KEY", "AQVN-from-env")
    monkeypatch.setenv("YC_FOLDER_ID", FOLDER)
    router = router_from_env(registry=PluginRegistry())
    assert any(isinstance(p, YandexGPTProvider) for p in router.providers)
