"""Secrets never reach logs, reprs or error texts: every credential kind, every failure."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.types import Message
from orchestrator_yandexgpt.emulator import YandexGPTEmulator

pytestmark = pytest.mark.anyio

HI = [Message("user", "hi")]


async def exercise(provider: Any, emulator: YandexGPTEmulator, texts: list[str]) -> None:
    texts += [repr(provider), repr(provider.config), provider.config.model_dump_json()]
    texts += [repr(provider.credentials), str(provider.config)]
    for call in (provider.chat, provider.count_tokens):
        try:
            await call(HI)
        except OrchestratorError as exc:
            texts += [str(exc), repr(exc), str(exc.__cause__ or "")]
    try:
        async for _ in provider.stream(HI):
            pass
    except OrchestratorError as exc:
        texts += [str(exc), repr(exc)]
    await provider.health_check()


@pytest.mark.parametrize(
    "kind", ["api_key", "bad_api_key", "iam_token", "bad_iam", "oauth", "bad_oauth", "sa"]
)
async def test_no_secret_in_logs_reprs_or_errors(
    make_provider: Any,
    emulator: YandexGPTEmulator,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str]
    if kind == "api_key":
        settings = {"api_key": emulator.api_key}
    elif kind == "bad_api_key":
        settings = {"api_key": "AQVN-wrong-but-still-secret"}
    elif kind == "iam_token":
        settings = {"iam_token": emulator.iam_token}
    elif kind == "bad_iam":
        settings = {"iam_token": "t1.wrong-but-still-secret"}
    elif kind == "oauth":
        settings = {"oauth_token": emulator.oauth_token}
    elif kind == "bad_oauth":
        settings = {"oauth_token": "y0_wrong-but-still-secret"}
    else:
        settings = {"service_account_key": emulator.create_service_account_key()}
    secrets = list(settings.values())
    texts: list[str] = []
    async with make_provider(max_retries=1, **settings) as provider:
        await exercise(provider, emulator, texts)  # success path
        emulator.expire_iam_tokens()
        for status in (400, 401, 403, 429, 500):
            emulator.fail_next(status, shape="llm" if status % 2 else "grpc")
            await exercise(provider, emulator, texts)
        emulator.cut_next_stream(after_chunks=1)
        await exercise(provider, emulator, texts)
    issued = [
        r["headers"]["authorization"].partition(" ")[2]
        for r in emulator.requests
        if r["headers"].get("authorization", "").startswith("Bearer t1.")
    ]
    if kind == "sa":
        import json

        key = json.loads(secrets[0])
        secrets = [key["private_key"].split("\n", 2)[2][:60]]
    haystack = "\n".join(texts) + "\n" + caplog.text
    for secret in secrets + issued:
        assert secret not in haystack, f"a {kind} secret leaked"
    assert texts  # something was scanned
