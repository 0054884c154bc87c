"""Every error path, against the emulator over real sockets, in both error body shapes."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)
from orchestrator.types import Message
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import YandexGPTEmulator

pytestmark = pytest.mark.anyio

HELLO = [Message("user", "Hello there, how are you today?")]

MAPPING = [
    (400, InvalidRequestError, False),
    (401, AuthenticationError, False),
    (403, PermissionDeniedError, False),
    (404, ModelNotFoundError, False),
    (429, RateLimitError, True),
    (500, ServiceUnavailableError, True),
    (501, ServiceUnavailableError, True),
    (503, ServiceUnavailableError, True),
    (504, ProviderTimeoutError, True),
]


@pytest.mark.parametrize("shape", ["grpc", "llm"])
@pytest.mark.parametrize(("status", "error", "transient"), MAPPING)
async def test_status_maps_to_typed_error(
    make_provider: Any,
    emulator: YandexGPTEmulator,
    shape: str,
    status: int,
    error: type[ProviderError],
    transient: bool,
) -> None:
    emulator.fail_next(status, shape=shape, message="scripted failure")  # type: ignore[arg-type]
    async with make_provider(max_retries=0) as provider:
        with pytest.raises(error) as caught:
            await provider.chat(HELLO)
    exc = caught.value
    assert type(exc) is error
    assert exc.status_code == status
    assert exc.transient is transient
    assert exc.provider == "yandexgpt"
    assert "scripted failure" in str(exc)
    assert exc.request_id == emulator.requests[-1]["headers"]["x-client-request-id"]
    if shape == "grpc":
        assert "gRPC code" in str(exc)


async def test_permission_error_hints_at_folder_and_role(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(folder_id="b1gsomeotherfolder") as provider:
        with pytest.raises(PermissionDeniedError) as caught:
            await provider.chat(HELLO)
    message = str(caught.value)
    assert "folder_id" in message
    assert "ai.languageModels.user" in message


async def test_folder_header_mismatch_is_permission_denied(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(
        model="gpt://b1gemulatorfolder000/yandexgpt-lite/latest",
        folder_id="b1gwrongfolder",
        send_folder_header=True,
    ) as provider:
        with pytest.raises(PermissionDeniedError):
            await provider.chat(HELLO)


async def test_wrong_api_key_is_authentication_error(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(api_key="AQVN-wrong-key-value") as provider:
        with pytest.raises(AuthenticationError) as caught:
            await provider.chat(HELLO)
    assert "AQVN-wrong-key-value" not in str(caught.value)
    assert "API key" in str(caught.value)


async def test_api_key_sent_as_bearer_is_rejected(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(api_key=None, iam_token=emulator.api_key) as provider:
        with pytest.raises(AuthenticationError):
            await provider.chat(HELLO)


async def test_prompt_too_long_is_context_length_error(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.context_limit = 5
    try:
        with pytest.raises(ContextLengthError, match="no more than 5, got 6"):
            await provider.chat(HELLO)
    finally:
        emulator.context_limit = 8192


async def test_unknown_model_is_model_not_found(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(model="no-such-model") as provider:
        with pytest.raises(ModelNotFoundError):
            await provider.chat(HELLO)


async def test_transient_errors_are_retried_honouring_retry_after(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    emulator.fail_next(429, retry_after=0.01)
    emulator.fail_next(503, shape="llm")
    async with make_provider(max_retries=2) as provider:
        completion = await provider.chat(HELLO)
    assert completion.text.startswith("Echo:")
    assert emulator.request_count == 3


async def test_retry_after_is_carried(make_provider: Any, emulator: YandexGPTEmulator) -> None:
    emulator.fail_next(429, retry_after=7)
    async with make_provider(max_retries=0) as provider:
        with pytest.raises(RateLimitError) as caught:
            await provider.chat(HELLO)
    assert caught.value.retry_after == 7


async def test_outage_then_recovery(make_provider: Any, emulator: YandexGPTEmulator) -> None:
    emulator.outage = True
    async with make_provider(max_retries=0) as provider:
        with pytest.raises(ServiceUnavailableError):
            await provider.chat(HELLO)
        emulator.outage = False
        assert (await provider.chat(HELLO)).finish_reason == "stop"


async def test_errors_before_the_stream_starts_are_typed_and_retried(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    emulator.fail_next(503)
    async with make_provider(max_retries=1) as provider:
        chunks = [c async for c in provider.stream(HELLO)]
    assert chunks[-1].finish_reason == "stop"
    emulator.fail_next(401)
    async with make_provider(max_retries=3) as provider:
        with pytest.raises(AuthenticationError):
            async for _ in provider.stream(HELLO):
                pass


async def _drain(provider: YandexGPTProvider) -> list[str]:
    received = []
    async for chunk in provider.stream(HELLO):
        received.append(chunk.delta)
    return received


async def test_stream_cut_before_final_status_is_an_error(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.cut_next_stream(after_chunks=2)
    received: list[str] = []
    with pytest.raises(StreamError, match="ended before a final status"):
        async for chunk in provider.stream(HELLO):
            received.append(chunk.delta)
    assert received == ["Echo:", " Hello"]


async def test_stream_cut_after_all_partials_is_still_an_error(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.cut_next_stream(after_chunks=100)
    with pytest.raises(StreamError):
        await _drain(provider)


async def test_stream_malformed_line_is_an_error(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.malform_next_stream(after_chunks=1)
    with pytest.raises(StreamError, match="not a JSON object"):
        await _drain(provider)


async def test_stream_error_line_is_a_typed_error(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.error_in_next_stream(after_chunks=2, grpc_code=8, message="quota exceeded")
    with pytest.raises(RateLimitError, match="quota exceeded") as caught:
        await _drain(provider)
    assert caught.value.status_code == 429
    emulator.error_in_next_stream(after_chunks=0, grpc_code=13, message="internal")
    with pytest.raises(ServiceUnavailableError):
        await _drain(provider)


async def test_oauth_rejected_by_iam(make_provider: Any, emulator: YandexGPTEmulator) -> None:
    async with make_provider(oauth_token="y0_not-the-right-token") as provider:
        with pytest.raises(AuthenticationError, match="OAuth token was rejected") as caught:
            await provider.chat(HELLO)
        assert "y0_not-the-right-token" not in str(caught.value)
        assert await provider.health_check() is False


async def test_iam_endpoint_failure_is_typed(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    emulator.fail_next_iam(503)
    async with make_provider(oauth_token=emulator.oauth_token, max_retries=0) as provider:
        with pytest.raises(ServiceUnavailableError, match="IAM token exchange"):
            await provider.chat(HELLO)
        assert (await provider.chat(HELLO)).finish_reason == "stop"  # recovers


async def test_iam_unreachable_is_transport_error(make_provider: Any) -> None:
    async with make_provider(
        oauth_token="y0_some-token", iam_url="http://127.0.0.1:9/iam/v1/tokens", max_retries=0
    ) as provider:
        with pytest.raises(ProviderError, match="IAM token exchange failed"):
            await provider.chat(HELLO)


async def test_unknown_service_account_key_is_rejected(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    other = YandexGPTEmulator().create_service_account_key()  # not trusted by `emulator`
    async with make_provider(service_account_key=other) as provider:
        with pytest.raises(AuthenticationError, match="service-account key"):
            await provider.chat(HELLO)


async def test_non_json_answers_are_errors(make_provider: Any, server: Any) -> None:
    async with make_provider(base_url=server.base_url + "/nowhere", max_retries=0) as provider:
        with pytest.raises(ProviderError) as caught:
            await provider.chat(HELLO)
    assert caught.value.status_code == 404
