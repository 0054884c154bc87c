"""The provider against the emulator over real sockets, on asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from orchestrator.errors import ConfigurationError, InvalidRequestError, ProviderTimeoutError
from orchestrator.testing import LoopbackServer
from orchestrator.types import GenerationParams, Message
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import (
    TEST_FOLDER_ID,
    TEST_IAM_TOKEN,
    TEST_OAUTH_TOKEN,
    YandexGPTEmulator,
    config_for,
)

pytestmark = pytest.mark.anyio

HELLO = [Message("user", "Hello there, how are you today?")]
EXPECTED = "Echo: Hello there, how are you today?"


async def collect(provider: YandexGPTProvider, messages: Any, params: Any = None) -> list[Any]:
    return [chunk async for chunk in provider.stream(messages, params)]


async def test_chat_returns_text_usage_and_request_id(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    completion = await provider.chat(HELLO)
    assert completion.text == EXPECTED
    assert completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 6
    assert completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 13
    assert completion.model == f"gpt://{TEST_FOLDER_ID}/yandexgpt-lite/latest"
    assert completion.extra["model_version"] == emulator.model_version
    sent = emulator.requests[-1]
    assert completion.request_id == sent["headers"]["x-client-request-id"]
    assert completion.extra["server_request_id"]


async def test_generate_returns_the_text(provider: YandexGPTProvider) -> None:
    assert await provider.generate("Hello there, how are you today?") == EXPECTED


async def test_messages_and_parameters_are_mapped(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    messages = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", "What is two plus two?"),
    ]
    await provider.chat(messages, GenerationParams(temperature=0.25, max_tokens=123))
    body = emulator.requests[-1]["json"]
    assert body == {
        "modelUri": f"gpt://{TEST_FOLDER_ID}/yandexgpt-lite/latest",
        "completionOptions": {"stream": False, "temperature": 0.25, "maxTokens": "123"},
        "messages": [
            {"role": "system", "text": "Be brief."},
            {"role": "user", "text": "Hi"},
            {"role": "assistant", "text": "Hello!"},
            {"role": "user", "text": "What is two plus two?"},
        ],
    }
    headers = emulator.requests[-1]["headers"]
    assert headers["authorization"].startswith("Api-Key ")
    assert "x-folder-id" not in headers  # API keys belong to their folder already
    assert "x-data-logging-enabled" not in headers


async def test_without_params_vendor_defaults_apply(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    await provider.chat(HELLO)
    assert emulator.requests[-1]["json"]["completionOptions"] == {"stream": False}


async def test_data_logging_opt_out_and_folder_header(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(data_logging=False, send_folder_header=True) as provider:
        await provider.chat(HELLO)
    headers = emulator.requests[-1]["headers"]
    assert headers["x-data-logging-enabled"] == "false"
    assert headers["x-folder-id"] == TEST_FOLDER_ID


@pytest.mark.parametrize(
    ("model", "uri"),
    [
        ("yandexgpt", f"gpt://{TEST_FOLDER_ID}/yandexgpt/latest"),
        ("yandexgpt/rc", f"gpt://{TEST_FOLDER_ID}/yandexgpt/rc"),
        ("llama-lite/deprecated", f"gpt://{TEST_FOLDER_ID}/llama-lite/deprecated"),
        (f"gpt://{TEST_FOLDER_ID}/llama/latest", f"gpt://{TEST_FOLDER_ID}/llama/latest"),
        (
            f"gpt://{TEST_FOLDER_ID}/yandexgpt-lite/latest@tamr0abc123",
            f"gpt://{TEST_FOLDER_ID}/yandexgpt-lite/latest@tamr0abc123",
        ),
    ],
)
async def test_model_uri_is_sent(
    make_provider: Any, emulator: YandexGPTEmulator, model: str, uri: str
) -> None:
    async with make_provider(model=model) as provider:
        completion = await provider.chat(HELLO)
    assert completion.model == uri
    assert emulator.requests[-1]["json"]["modelUri"] == uri


async def test_a_changed_config_model_reaches_the_wire(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    """`orchestrator ask --model` and `provider.config.model = ...` change the model after
    construction: every later request (chat, stream, health check) uses the new one."""
    async with make_provider(model="yandexgpt-lite") as provider:
        await provider.chat(HELLO)
        assert emulator.requests[-1]["json"]["modelUri"].endswith("/yandexgpt-lite/latest")
        provider.config.model = "yandexgpt"
        completion = await provider.chat(HELLO)
        assert completion.model == f"gpt://{TEST_FOLDER_ID}/yandexgpt/latest"
        assert emulator.requests[-1]["json"]["modelUri"] == completion.model
        await collect(provider, HELLO)
        assert emulator.requests[-1]["json"]["modelUri"] == completion.model
        assert await provider.health_check()
        assert emulator.requests[-1]["json"]["modelUri"] == completion.model
        provider.config.model = "not a model!"
        with pytest.raises(ConfigurationError, match="is not a model name"):
            await provider.chat(HELLO)


async def test_a_per_request_model_reaches_the_wire(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(model="yandexgpt-lite") as provider:
        params = GenerationParams(model="yandexgpt/rc")
        completion = await provider.chat(HELLO, params)
        assert completion.model == f"gpt://{TEST_FOLDER_ID}/yandexgpt/rc"
        assert emulator.requests[-1]["json"]["modelUri"] == completion.model
        chunks = await collect(provider, HELLO, params)
        assert emulator.requests[-1]["json"]["modelUri"] == completion.model == chunks[-1].model
        await provider.chat(HELLO)
        assert emulator.requests[-1]["json"]["modelUri"].endswith("/yandexgpt-lite/latest")
        sent = len(emulator.requests)
        with pytest.raises(InvalidRequestError, match="is not a model name"):
            await provider.chat(HELLO, GenerationParams(model="not a model!"))
        assert len(emulator.requests) == sent  # refused before any network call


async def test_stream_yields_deltas_that_join_to_the_plain_answer(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    plain = await provider.chat(HELLO)
    chunks = await collect(provider, HELLO)
    assert "".join(c.delta for c in chunks) == plain.text
    assert len(chunks) == 7  # one token per line, no duplicated text
    assert [c.finish_reason for c in chunks] == [None] * 6 + ["stop"]
    assert chunks[-1].usage == plain.usage
    assert emulator.requests[-1]["json"]["completionOptions"]["stream"] is True
    assert len({c.request_id for c in chunks}) == 1


async def test_stream_chunking_plan(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.chunk_next_stream([3, 2])
    chunks = await collect(provider, HELLO)
    assert [c.delta for c in chunks] == ["Echo: Hello there,", " how are", " you", " today?"]


async def test_truncated_final_is_length(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    completion = await provider.chat(HELLO, GenerationParams(max_tokens=3))
    assert completion.finish_reason == "length"
    assert completion.text == "Echo: Hello there,"
    emulator.finish_next("TRUNCATED_FINAL")
    chunks = await collect(provider, HELLO)
    assert chunks[-1].finish_reason == "length"
    assert "".join(c.delta for c in chunks) == "Echo: Hello there,"


async def test_content_filter_is_told_apart_from_success(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.finish_next("CONTENT_FILTER")
    completion = await provider.chat(HELLO)
    assert completion.finish_reason == "content_filter"
    emulator.finish_next("CONTENT_FILTER")
    chunks = await collect(provider, HELLO)
    assert chunks[-1].finish_reason == "content_filter"
    assert "".join(c.delta for c in chunks) == completion.text
    emulator.finish_next("CONTENT_FILTER")
    with pytest.raises(InvalidRequestError, match="CONTENT_FILTER"):
        await provider.generate("something")


async def test_iam_token_auth_sends_bearer_and_folder(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(iam_token=TEST_IAM_TOKEN) as provider:
        assert await provider.generate("hi") == "Echo: hi"
    headers = emulator.requests[-1]["headers"]
    assert headers["authorization"] == f"Bearer {TEST_IAM_TOKEN}"
    assert headers["x-folder-id"] == TEST_FOLDER_ID
    assert emulator.iam_request_count == 0


async def test_oauth_token_is_exchanged_once(
    make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    async with make_provider(oauth_token=TEST_OAUTH_TOKEN) as provider:
        for _ in range(3):
            assert await provider.generate("hi") == "Echo: hi"
    assert emulator.iam_request_count == 1
    assert emulator.requests[-1]["headers"]["authorization"].startswith("Bearer t1.")


async def test_service_account_key_jwt_exchange(
    make_provider: Any, emulator: YandexGPTEmulator, tmp_path: Any
) -> None:
    key = emulator.create_service_account_key()
    key_file = tmp_path / "authorized_key.json"
    key_file.write_text(key)
    async with make_provider(service_account_key_file=str(key_file)) as provider:
        assert provider.auth_mode == "service_account_key"
        assert await provider.generate("hi") == "Echo: hi"
        assert await provider.generate("hi again") == "Echo: hi again"
    assert emulator.iam_request_count == 1


async def test_https_with_the_emulator_ca(tls_server: LoopbackServer) -> None:
    tls_server.app.reset()
    config = config_for(tls_server)
    assert config.ca_bundle == tls_server.ca_file
    async with YandexGPTProvider(config, environ={}) as provider:
        assert await provider.generate("secure") == "Echo: secure"
        assert "".join([c.delta async for c in provider.stream(HELLO)]) == EXPECTED


async def test_health_check_uses_tokenize_not_completion(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    assert await provider.health_check() is True
    assert [r["path"] for r in emulator.requests] == ["/foundationModels/v1/tokenize"]
    emulator.fail_next(401)
    assert await provider.health_check() is False
    emulator.outage = True
    assert await provider.health_check() is False


async def test_health_check_false_when_unreachable() -> None:
    config = config_for(_DeadServer(), max_retries=0)  # type: ignore[arg-type]
    async with YandexGPTProvider(config, environ={}) as provider:
        assert await provider.health_check() is False


class _DeadServer:
    """Looks like a LoopbackServer but nothing listens there."""

    app = None
    base_url = "http://127.0.0.1:9"
    ca_file = None


async def test_token_counting(provider: YandexGPTProvider) -> None:
    assert await provider.count_tokens("one two three four") == 4
    tokens = await provider.tokenize("one two")
    assert [t.text for t in tokens] == ["one", " two"]
    assert all(isinstance(t.id, int) for t in tokens)
    assert await provider.count_tokens([Message("system", "a b"), Message("user", "c")]) == 3


async def test_embeddings(provider: YandexGPTProvider, emulator: YandexGPTEmulator) -> None:
    doc = await provider.embed(["text"])
    query = await provider.embed(["text"], kind="query")
    assert len(doc.vectors[0]) == doc.dimension == 256
    assert doc.vectors != query.vectors
    assert emulator.requests[-1]["json"]["modelUri"] == (
        f"emb://{TEST_FOLDER_ID}/text-search-query/latest"
    )


async def test_async_completion_polls_the_operation(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.operation_polls = 2
    completion = await provider.chat_async(HELLO)
    assert completion.text == EXPECTED
    assert completion.usage is not None
    assert completion.usage.total_tokens == 13
    paths = [r["path"] for r in emulator.requests]
    assert paths[0] == "/foundationModels/v1/completionAsync"
    assert paths.count(f"/operations/{completion.extra['operation_id']}") == 3


async def test_async_completion_operation_error(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.operation_polls = 0
    emulator.fail_next_operation(grpc_code=3, message="Number of input tokens too large")
    with pytest.raises(InvalidRequestError, match="Number of input tokens"):
        await provider.chat_async(HELLO)


async def test_async_completion_gives_up_after_max_wait(
    provider: YandexGPTProvider, emulator: YandexGPTEmulator
) -> None:
    emulator.operation_polls = 10_000
    with pytest.raises(ProviderTimeoutError, match="fetch_async"):
        await provider.chat_async(HELLO, max_wait=0.2)
    with pytest.raises(InvalidRequestError, match="not an operation id"):
        await provider.fetch_async("../secret")


async def test_cancellation_releases_the_connection(
    server: LoopbackServer, make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    emulator.stream_delay = 0.05
    long_prompt = [Message("user", " ".join(["word"] * 200))]
    async with make_provider() as provider:
        received = []
        with anyio.move_on_after(0.3):
            async for chunk in provider.stream(long_prompt):
                received.append(chunk)
        assert received  # it was cancelled mid-stream
        with anyio.move_on_after(0.02):
            await provider.chat(HELLO, GenerationParams(max_tokens=5))
        emulator.stream_delay = 0.0
        assert (await provider.chat(HELLO)).text == EXPECTED
    with anyio.fail_after(5):
        while server.open_connections:
            await anyio.sleep(0.01)


async def test_exchanged_iam_tokens_keep_the_secret_registry_bounded(
    make_provider: Any, emulator: YandexGPTEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, defect 12: each exchanged IAM token (and its header) is an ephemeral secret,
    so a long-running process keeps a bounded set; the newest one stays masked."""
    from orchestrator import _secrets

    registry = _secrets.SecretRegistry(ephemeral_limit=4)
    monkeypatch.setattr(_secrets, "_registry", registry)
    async with make_provider(oauth_token=TEST_OAUTH_TOKEN) as provider:
        for _ in range(6):
            provider.credentials.invalidate(await provider.credentials.authorization(provider))
            assert await provider.generate("hi") == "Echo: hi"
        header = await provider.credentials.authorization(provider)
    assert emulator.iam_request_count >= 6
    assert header in registry
    assert len(registry) <= 4 + 2  # the ephemeral tokens plus the config's credentials
    assert _secrets.redact(f"sent {header}") == "sent ***"
