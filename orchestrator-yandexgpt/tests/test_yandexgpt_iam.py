"""IAM tokens exchanged from OAuth tokens and service-account keys: caching, hourly refresh,
single-flight under concurrency, refresh after expiry."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from orchestrator.errors import AuthenticationError, ConfigurationError
from orchestrator.types import Message
from orchestrator_yandexgpt.auth import ExchangedIamAuth, ServiceAccountKey, parse_expires_at
from orchestrator_yandexgpt.emulator import YandexGPTEmulator

pytestmark = pytest.mark.anyio

HI = [Message("user", "hi")]


@pytest.mark.parametrize("source", ["oauth", "service_account"])
async def test_refresh_is_single_flight(
    make_provider: Any, emulator: YandexGPTEmulator, source: str
) -> None:
    if source == "oauth":
        provider = make_provider(oauth_token=emulator.oauth_token)
    else:
        provider = make_provider(service_account_key=emulator.create_service_account_key())
    emulator.latency = 0.05  # keeps calls overlapping (IAM calls are not delayed)
    results: list[str] = []

    async def call() -> None:
        results.append((await provider.chat(HI)).text)

    async with provider, anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(call)
    assert results == ["Echo: hi"] * 20
    assert emulator.iam_request_count == 1
    assert provider.credentials.exchanges == 1


async def test_expired_token_is_refreshed_once_and_the_call_succeeds(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(oauth_token=emulator.oauth_token) as provider:
        await provider.chat(HI)
        emulator.expire_iam_tokens()
        assert (await provider.chat(HI)).text == "Echo: hi"
        async for _ in provider.stream(HI):
            pass
    assert emulator.iam_request_count == 2
    assert emulator.request_count == 4  # one rejected call, re-sent with the new token


async def test_static_iam_token_expiry_is_an_auth_error(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    emulator.expire_iam_tokens()
    async with make_provider(iam_token=emulator.iam_token) as provider:
        with pytest.raises(AuthenticationError, match="expire"):
            await provider.chat(HI)
    assert emulator.request_count == 1  # nothing to refresh: no second try


async def test_token_is_refreshed_after_the_refresh_interval(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(oauth_token=emulator.oauth_token, iam_refresh_interval=3600) as p:
        await p.chat(HI)
        await p.chat(HI)
        assert emulator.iam_request_count == 1
        p.credentials._fetched_at = time.monotonic() - 3601  # an hour passes
        await p.chat(HI)
        assert emulator.iam_request_count == 2


async def test_token_near_its_expiry_is_refreshed(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    emulator.iam_token_ttl = 60  # expires within the safety margin
    try:
        async with make_provider(oauth_token=emulator.oauth_token) as provider:
            await provider.chat(HI)
            await provider.chat(HI)
    finally:
        emulator.iam_token_ttl = 12 * 3600
    assert emulator.iam_request_count == 2


def test_parse_expires_at() -> None:
    assert parse_expires_at("2026-01-01T00:00:00.123456789Z") == pytest.approx(1767225600.123456)
    assert parse_expires_at("2026-01-01T00:00:00Z") == 1767225600
    assert parse_expires_at("soon") is None
    assert parse_expires_at(None) is None


def test_service_account_jwt_claims() -> None:
    import jwt

    key_json = YandexGPTEmulator().create_service_account_key("ajeSA")
    key = ServiceAccountKey(key_json)
    token = key.make_jwt(now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "PS256"
    assert header["kid"] == key.key_id
    assert claims == {
        "iss": "ajeSA",
        "aud": "https://iam.api.cloud.yandex.net/iam/v1/tokens",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }
    assert "PRIVATE" not in repr(key)


@pytest.mark.parametrize(
    ("key_json", "match"),
    [
        ("not json", "authorized key JSON"),
        ('{"id": "x"}', "authorized key JSON"),
        (
            '{"id": "x", "service_account_id": "y", "private_key": "garbage"}',
            "cannot be read",
        ),
    ],
)
def test_bad_service_account_keys(key_json: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ServiceAccountKey(key_json)


def test_missing_jwt_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ConfigurationError, match=r"orchestrator-yandexgpt\[jwt\]"):
        ServiceAccountKey("{}")


def test_exchanged_auth_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ExchangedIamAuth(iam_url="http://x", refresh_interval=1)
