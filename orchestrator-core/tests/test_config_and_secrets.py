"""ProviderConfig validation, GenerationParams ranges, and secrets that never leak."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator import Router
from orchestrator.errors import AllProvidersFailedError, AuthenticationError, ProviderError
from orchestrator.providers import GenerationParams, MockConfig, MockProvider, ProviderConfig

SECRET = "sk-live-4f9a8b7c6d5e"


def test_defaults_are_documented_values() -> None:
    params = GenerationParams()
    assert (params.temperature, params.max_tokens, params.top_p, params.stop) == (
        0.7,
        1000,
        1.0,
        None,
    )
    config = ProviderConfig(name="p")
    assert (config.timeout, config.max_retries, config.verify_ssl) == (30.0, 3, True)


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", 0), ("timeout", -1), ("max_retries", -1), ("max_retries", 99), ("name", "")],
)
def test_config_ranges(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        ProviderConfig(**{"name": "p", field: value})  # type: ignore[arg-type]


def test_config_validates_assignment_and_refuses_unknown() -> None:
    config = ProviderConfig(name="p")
    config.base_url = "https://example.test/v1"
    with pytest.raises(ValidationError):
        config.timeout = 0
    with pytest.raises(ValidationError):
        config.custom_field = "value"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        ProviderConfig(name="p", colour="red")  # type: ignore[call-arg]


@given(
    temperature=st.floats(allow_nan=True, allow_infinity=True),
    max_tokens=st.integers(min_value=-10, max_value=2_000_000),
    top_p=st.floats(allow_nan=True),
)
def test_params_accept_exactly_the_documented_ranges(
    temperature: float, max_tokens: int, top_p: float
) -> None:
    valid = 0 <= temperature <= 2 and 1 <= max_tokens <= 1_000_000 and 0 < top_p <= 1
    try:
        params = GenerationParams(temperature=temperature, max_tokens=max_tokens, top_p=top_p)
    except ValidationError as exc:
        assert not valid, exc
    else:
        assert valid
        assert params.temperature == temperature


def test_params_reject_unknown_names_and_empty_stops() -> None:
    with pytest.raises(ValidationError, match="temprature"):
        GenerationParams(temprature=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="stop"):
        GenerationParams(stop=[""])
    params = GenerationParams()
    with pytest.raises(ValidationError):
        params.max_tokens = 0


def test_key_usable_as_the_guide_writes_it_but_never_shown() -> None:
    config = ProviderConfig(name="p", api_key=SECRET)
    assert f"Bearer {config.api_key}" == f"Bearer {SECRET}"
    assert config.api_key == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in json.dumps(config.model_dump())
    assert SECRET not in config.model_dump_json()
    assert SECRET not in repr(config.api_key)


def test_key_has_pydantics_get_secret_value() -> None:
    """Issue 12, item 13: code written for pydantic's ``SecretStr`` works unchanged."""
    config = ProviderConfig(name="p", api_key=SECRET)
    assert config.api_key is not None
    value = config.api_key.get_secret_value()  # type: ignore[attr-defined]
    assert value == SECRET
    assert type(value) is str  # a plain string: its repr shows it, as pydantic's does
    assert repr(value) == repr(SECRET)
    assert f"Bearer {config.api_key}" == f"Bearer {SECRET}"  # the guide's way still works
    assert SECRET not in repr(config.api_key)
    config.api_key = "sk-rotated-0123456789"
    assert config.api_key.get_secret_value() == "sk-rotated-0123456789"  # type: ignore[attr-defined]


def test_invalid_config_error_does_not_echo_the_key() -> None:
    with pytest.raises(ValidationError) as info:
        ProviderConfig(name="", api_key=SECRET)
    assert SECRET not in str(info.value)


@pytest.mark.anyio
async def test_secrets_absent_from_logs_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    class Leaky(MockProvider):
        async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
            self.logger.warning(f"calling with key {self.config.api_key}")
            raise AuthenticationError(f"key {self.config.api_key} rejected")

        chat = MockProvider.__mro__[1].chat  # type: ignore[assignment]

    router = Router()
    router.add_provider(Leaky(MockConfig(name="leaky", api_key=SECRET)))
    with pytest.raises(AllProvidersFailedError) as info:
        await router.route("x")
    texts = [str(info.value), repr(info.value), *(str(e) for e in info.value.errors)]
    texts += [r.getMessage() for r in caplog.records]
    assert texts and all(SECRET not in t for t in texts)
    assert any("***" in t for t in texts)


def test_a_logged_traceback_is_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    from orchestrator._secrets import get_logger
    from orchestrator.config import Secret

    Secret(SECRET)  # registered, as every configured credential is
    logger = get_logger("orchestrator.test")
    try:
        raise RuntimeError(f"third-party error quoting {SECRET}")  # not an OrchestratorError
    except RuntimeError:
        logger.warning("something failed", exc_info=True)
    text = caplog.text
    assert "third-party error quoting ***" in text and SECRET not in text


def test_provider_error_carries_everything() -> None:
    error = ProviderError("boom", provider="p", status_code=503, request_id="r-1", retry_after=2.0)
    assert error.transient
    assert str(error) == "boom (provider=p, status=503, request_id=r-1, retry_after=2s)"
    assert not ProviderError("plain").transient
