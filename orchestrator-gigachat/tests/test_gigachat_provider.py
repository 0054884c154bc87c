"""GigaChatProvider against the emulator over real sockets, on asyncio and trio."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import aclosing

import anyio
import pytest

from orchestrator.errors import (
    AuthenticationError,
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    TransportError,
)
from orchestrator.testing import LoopbackServer
from orchestrator.types import GenerationParams, Message
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.emulator import (
    BLACKLIST_ANSWER,
    BLACKLIST_TRIGGER,
    CutStream,
    ExpireTokens,
    Fail,
    GigaChatEmulator,
    Pass,
    config_for,
)

pytestmark = pytest.mark.anyio

Make = Callable[..., GigaChatProvider]
HELLO = [Message("user", "Hello, GigaChat!")]


def last_body(emulator: GigaChatEmulator, path: str = "/api/v1/chat/completions") -> dict:
    request = [r for r in emulator.requests if r.path == path][-1]
    return json.loads(request.body)


async def collect(provider: GigaChatProvider, messages: list[Message], **kw: object) -> list:
    return [chunk async for chunk in provider.stream(messages, **kw)]  # type: ignore[arg-type]


# -- chat ----------------------------------------------------------------------------------


async def test_chat_answer_usage_request_id(provider: GigaChatProvider, emulator) -> None:
    completion = await provider.chat(
        [
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("assistant", "Hello"),
            Message("user", "How are you?"),
        ]
    )
    assert completion.text == "GigaChat emulator: How are you?"
    assert completion.finish_reason == "stop"
    assert completion.provider == "gigachat"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.usage.cached_prompt_tokens == 0
    request = emulator.requests[-1]
    assert completion.request_id == request.headers["x-request-id"]
    assert completion.extra["model_version"] == "GigaChat-2:2.0.28.2"
    body = last_body(emulator)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["model"] == "GigaChat-2" and body["stream"] is False


async def test_a_changed_config_model_reaches_the_wire(
    provider: GigaChatProvider, emulator
) -> None:
    """`orchestrator ask --model` sets ``config.model`` after construction: the next chat and
    stream send (and report) the new model."""
    await provider.chat(HELLO)
    assert last_body(emulator)["model"] == "GigaChat-2"
    provider.config.model = "GigaChat-2-Max"
    completion = await provider.chat(HELLO)
    assert last_body(emulator)["model"] == "GigaChat-2-Max" == completion.model
    chunks = await collect(provider, HELLO)
    assert last_body(emulator)["model"] == "GigaChat-2-Max" == chunks[-1].model


async def test_a_per_request_model_reaches_the_wire(provider: GigaChatProvider, emulator) -> None:
    params = GenerationParams(model="GigaChat-2-Pro")
    completion = await provider.chat(HELLO, params)
    assert last_body(emulator)["model"] == "GigaChat-2-Pro" == completion.model
    chunks = await collect(provider, HELLO, params=params)
    assert last_body(emulator)["model"] == "GigaChat-2-Pro" == chunks[-1].model
    await provider.chat(HELLO)  # the next request without one uses config.model again
    assert last_body(emulator)["model"] == "GigaChat-2"


async def test_generate_is_the_seed_contract(provider: GigaChatProvider) -> None:
    assert await provider.generate("ping") == "GigaChat emulator: ping"


async def test_parameters_are_mapped(make_provider: Make, emulator) -> None:
    provider = make_provider(repetition_penalty=1.1)
    await provider.chat(HELLO, GenerationParams(temperature=0.3, top_p=0.5, max_tokens=50))
    body = last_body(emulator)
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.5
    assert body["max_tokens"] == 50
    assert body["repetition_penalty"] == 1.1


async def test_update_interval_is_sent_on_streams_only(make_provider: Make, emulator) -> None:
    provider = make_provider(update_interval=0.1)
    await collect(provider, HELLO)
    assert last_body(emulator)["update_interval"] == 0.1
    await provider.chat(HELLO)
    assert "update_interval" not in last_body(emulator)


async def test_temperature_zero_becomes_greedy_minimum(provider, emulator) -> None:
    await provider.chat(HELLO, GenerationParams(temperature=0))
    assert last_body(emulator)["temperature"] == 0.001


async def test_stop_is_rejected_before_any_network_call(provider, emulator) -> None:
    with pytest.raises(InvalidRequestError, match="no stop sequences"):
        await provider.chat(HELLO, GenerationParams(stop=["\n"]))
    with pytest.raises(InvalidRequestError, match="no stop sequences"):
        await collect(provider, HELLO, params=GenerationParams(stop=["x"]))
    assert emulator.request_count == 0 and emulator.oauth_count == 0


@pytest.mark.parametrize(
    "messages",
    [
        [Message("user", "a"), Message("system", "late")],
        [Message("system", "a"), Message("system", "b"), Message("user", "c")],
        [],
        [{"role": "robot", "content": "x"}],
    ],
)
async def test_bad_messages_rejected_before_network(provider, emulator, messages) -> None:
    with pytest.raises(InvalidRequestError):
        await provider.chat(messages)
    assert emulator.request_count == 0


async def test_dict_messages_are_accepted(provider) -> None:
    completion = await provider.chat([{"role": "user", "content": "dicts"}])  # type: ignore[list-item]
    assert completion.text == "GigaChat emulator: dicts"


async def test_session_id_header(make_provider: Make, emulator) -> None:
    provider = make_provider(session_id="conversation-1")
    first = await provider.chat(HELLO)
    second = await provider.chat([*HELLO, Message("assistant", "hi"), Message("user", "more")])
    assert emulator.requests[-1].headers["x-session-id"] == "conversation-1"
    assert first.extra["session_id"] == "conversation-1"
    assert second.usage is not None and second.usage.cached_prompt_tokens
    await provider.chat(HELLO, session_id="other")
    assert emulator.requests[-1].headers["x-session-id"] == "other"


async def test_length_and_blacklist_finish_reasons(provider) -> None:
    cut = await provider.chat(HELLO, GenerationParams(max_tokens=2))
    assert cut.finish_reason == "length" and cut.text == "GigaChat emulator"
    refused = await provider.chat([Message("user", f"{BLACKLIST_TRIGGER} politics")])
    assert refused.finish_reason == "content_filter"
    assert refused.extra["finish_reason"] == "blacklist"
    assert refused.text == BLACKLIST_ANSWER


# -- streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["Hello, GigaChat!", "один два три", "x", "  spaced  out  "])
async def test_stream_reassembles_to_the_plain_answer(provider, emulator, prompt) -> None:
    messages = [Message("user", prompt)]
    plain = await provider.chat(messages)
    chunks = await collect(provider, messages)
    assert len(chunks) >= 2
    assert "".join(c.delta for c in chunks) == plain.text
    assert [c.finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]
    request = emulator.requests[-1]
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["cache-control"] == "no-store"
    assert json.loads(request.body)["stream"] is True
    assert {c.request_id for c in chunks} == {request.headers["x-request-id"]}


async def test_stream_skips_keepalive_comments(provider, emulator) -> None:
    emulator.keepalive = True
    chunks = await collect(provider, HELLO)
    assert "".join(c.delta for c in chunks) == "GigaChat emulator: Hello, GigaChat!"


async def test_stream_finish_reasons(provider) -> None:
    chunks = await collect(provider, HELLO, params=GenerationParams(max_tokens=2))
    assert chunks[-1].finish_reason == "length"
    chunks = await collect(provider, [Message("user", BLACKLIST_TRIGGER)])
    assert chunks[-1].finish_reason == "content_filter"


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        (lambda e: e.cut_next_stream(after_chunks=2), "without data: \\[DONE\\]"),
        (lambda e: e.cut_next_stream(after_chunks=0), "without data: \\[DONE\\]"),
        (lambda e: e.drop_done_next_stream(), "without data: \\[DONE\\]"),
        (lambda e: e.malform_next_stream(after_chunks=1), "malformed event"),
        (lambda e: e.script(CutStream(after_chunks=1)), "without data: \\[DONE\\]"),
        (lambda e: e.break_next_stream(after_chunks=2), "broke"),
    ],
)
async def test_broken_streams_are_errors_never_success(provider, emulator, fault, match) -> None:
    fault(emulator)
    received: list = []
    with pytest.raises(StreamError, match=match) as info:
        async for chunk in provider.stream(HELLO):
            received.append(chunk)
    assert all(c.finish_reason is None for c in received)
    assert info.value.request_id == emulator.requests[-1].headers["x-request-id"]


async def test_stream_non_200_maps_like_plain(provider, emulator) -> None:
    emulator.fail_next(429, retry_after=3, message="Too many requests")
    with pytest.raises(RateLimitError, match="Too many requests") as info:
        await collect(provider, HELLO)
    assert info.value.retry_after == 3
    assert info.value.status_code == 429
    assert info.value.request_id == emulator.requests[-1].headers["x-request-id"]


async def test_stream_401_refreshes_once(provider, emulator) -> None:
    await provider.chat(HELLO)
    emulator.expire_tokens()
    chunks = await collect(provider, HELLO)
    assert chunks[-1].finish_reason == "stop"
    assert emulator.oauth_count == 2


async def test_stream_retries_transient_open_failures(make_provider: Make, emulator) -> None:
    provider = make_provider(max_retries=2, backoff_base=0, backoff_max=0)
    emulator.fail_next(503, times=2)
    chunks = await collect(provider, HELLO)
    assert chunks[-1].finish_reason == "stop"


async def test_cancelled_stream_releases_the_connection(
    make_provider: Make, emulator, server: LoopbackServer, wait_until
) -> None:
    provider = make_provider()
    emulator.chunk_delay = 0.2
    async with aclosing(provider.stream([Message("user", "one two three four five")])) as it:
        async for _ in it:
            break  # the consumer walks away after the first chunk
    with anyio.move_on_after(0.05) as scope:
        async with aclosing(provider.stream(HELLO)) as it:
            async for _ in it:
                pass
    assert scope.cancelled_caught
    await provider.aclose()
    assert wait_until(lambda: server.open_connections == 0)


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (402, QuotaExceededError),
        (403, PermissionDeniedError),
        (404, ModelNotFoundError),
        (413, ContextLengthError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (500, ServiceUnavailableError),
        (502, ServiceUnavailableError),
        (503, ServiceUnavailableError),
        (504, ServiceUnavailableError),
        (418, ProviderError),
    ],
)
async def test_every_error_status_maps(provider, emulator, status, error) -> None:
    emulator.fail_next(status, times=2, message=f"vendor says {status}")
    with pytest.raises(error) as info:
        await provider.chat(HELLO)
    exc = info.value
    assert type(exc) is error
    assert f"vendor says {status}" in str(exc)
    assert exc.status_code == status
    assert exc.provider == "gigachat"
    assert exc.request_id == emulator.requests[-1].headers["x-request-id"]
    assert exc.transient == (status >= 500 or status == 429)


async def test_retry_after_is_honoured(make_provider: Make, emulator) -> None:
    provider = make_provider(max_retries=1, backoff_max=5)
    emulator.fail_next(429, retry_after=0.01)
    assert (await provider.chat(HELLO)).text
    assert emulator.request_count == 2
    emulator.fail_next(503, retry_after=60)  # longer than backoff_max: give up at once
    with pytest.raises(ServiceUnavailableError) as info:
        await provider.chat(HELLO)
    assert info.value.retry_after == 60


async def test_422_from_the_server_keeps_the_vendor_message(provider, emulator) -> None:
    provider.config.repetition_penalty = None
    emulator.fail_next(422, message="Invalid params: repetition_penalty must be in range (0, +inf)")
    with pytest.raises(InvalidRequestError, match="repetition_penalty must be in range"):
        await provider.chat(HELLO)


async def test_unknown_model_is_model_not_found(make_provider: Make) -> None:
    with pytest.raises(ModelNotFoundError, match="No such model"):
        await make_provider(model="GigaChat-42").chat(HELLO)


async def test_prompt_over_context_window(provider, emulator) -> None:
    emulator.context_window = 5
    with pytest.raises(ContextLengthError, match="Payload too large"):
        await provider.chat([Message("user", "one two three four five six")])
    emulator.context_window = 32768


async def test_connect_error_is_transient_transport_error() -> None:
    config = config_for(LoopbackServer(GigaChatEmulator()), max_retries=0)
    config.base_url = "http://127.0.0.1:9/api/v1"
    config.auth_url = "http://127.0.0.1:9/api/v2/oauth"
    provider = GigaChatProvider(config)
    with pytest.raises(TransportError) as info:
        await provider.chat(HELLO)
    assert info.value.transient
    assert "token request" in str(info.value)
    assert await provider.health_check() is False


async def test_read_timeout_is_a_timeout_error(make_provider: Make, emulator) -> None:
    provider = make_provider(timeout=0.2)
    await provider.chat(HELLO)  # token first: latency applies to API calls only
    emulator.latency = 1.0
    with pytest.raises(ProviderTimeoutError) as info:
        await provider.chat(HELLO)
    assert info.value.request_id  # our X-Request-ID, for support
    assert isinstance(info.value, TimeoutError)


async def test_api_success_with_non_json_body_is_an_error(provider, emulator) -> None:
    await provider.chat(HELLO)
    provider.config.base_url = provider.config.base_url.replace("/api/v1", "/nowhere")  # type: ignore[union-attr]
    await provider.aclose()  # the client holds the old base_url
    with pytest.raises(ProviderError):
        await provider.chat(HELLO)


# -- OAuth ---------------------------------------------------------------------------------


async def test_oauth_request_shape(provider, emulator) -> None:
    await provider.chat(HELLO)
    oauth = next(r for r in emulator.requests if r.path == "/api/v2/oauth")
    assert oauth.headers["authorization"] == f"Basic {emulator.authorization_key}"
    assert len(oauth.headers["rquid"]) == 36
    assert oauth.headers["content-type"] == "application/x-www-form-urlencoded"
    assert oauth.body == b"scope=GIGACHAT_API_PERS"
    api = emulator.requests[-1]
    assert api.headers["authorization"].startswith("Bearer ")


async def test_each_oauth_request_has_a_fresh_rquid(make_provider: Make, emulator) -> None:
    providers = [make_provider() for _ in range(3)]  # kept alive until the loop ends
    for provider in providers:
        async with provider:
            await provider.chat(HELLO)
    ids = {r.headers["rquid"] for r in emulator.requests if r.path == "/api/v2/oauth"}
    assert len(ids) == 3


async def test_concurrent_first_calls_share_one_refresh(provider, emulator) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(provider.chat, HELLO)
    assert emulator.oauth_count == 1
    assert emulator.request_count == 100
    await provider.aclose()


async def test_token_is_cached_and_refreshed_before_expiry(make_provider: Make, emulator) -> None:
    provider = make_provider()
    for _ in range(3):
        await provider.chat(HELLO)
    assert emulator.oauth_count == 1
    emulator.token_ttl = 30  # less than the 60 s safety margin: refresh before each call
    provider.tokens.expire()
    await provider.chat(HELLO)
    await provider.chat(HELLO)
    assert emulator.oauth_count == 3
    provider.config.token_refresh_margin = 0
    await provider.chat(HELLO)
    assert emulator.oauth_count == 3
    emulator.token_ttl = 1800


@pytest.mark.parametrize(
    ("unit", "shape"), [("ms", "access_token"), ("s", "access_token"), ("ms", "tok")]
)
async def test_token_response_variants(
    make_provider: Make, emulator, unit: str, shape: str
) -> None:
    emulator.expires_at_unit, emulator.token_shape = unit, shape
    provider = make_provider()
    await provider.chat(HELLO)
    await provider.chat(HELLO)
    assert emulator.oauth_count == 1
    token = provider.tokens.current()
    assert token is not None and 1000 < token.expires_at - __import__("time").time() < 1900
    emulator.expires_at_unit, emulator.token_shape = "ms", "access_token"


async def test_401_drops_the_token_refreshes_and_retries_once(provider, emulator) -> None:
    await provider.chat(HELLO)
    emulator.script(ExpireTokens())
    assert (await provider.chat(HELLO)).text
    assert emulator.oauth_count == 2
    emulator.fail_next(401, times=2)
    with pytest.raises(AuthenticationError, match="rejected even after a refresh"):
        await provider.chat(HELLO)
    assert emulator.oauth_count == 3


async def test_bad_authorization_key(make_provider: Make, emulator) -> None:
    provider = make_provider(api_key="d3Jvbmc6a2V5")
    with pytest.raises(AuthenticationError) as info:
        await provider.chat(HELLO)
    text = str(info.value)
    assert "GIGACHAT_CREDENTIALS" in text and "developers.sber.ru/studio" in text
    assert "credentials doesn't match db data" in text
    assert emulator.request_count == 0
    assert await provider.health_check() is False


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RateLimitError),
        (500, ServiceUnavailableError),
        (503, ServiceUnavailableError),
        (403, PermissionDeniedError),
        (400, AuthenticationError),
        (418, ProviderError),
    ],
)
async def test_oauth_failures_are_typed(provider, emulator, status, error) -> None:
    emulator.fail_next_oauth(status, retry_after=2, message="oauth says no")
    with pytest.raises(error) as info:
        await provider.chat(HELLO)
    assert type(info.value) is error
    assert info.value.status_code == status
    assert info.value.retry_after == 2
    assert "oauth says no" in str(info.value)


async def test_oauth_outage_is_transient(make_provider: Make, emulator) -> None:
    emulator.oauth_outage = True
    with pytest.raises(ServiceUnavailableError) as info:
        await make_provider().chat(HELLO)
    assert info.value.transient


async def test_scope_mismatch_is_an_authentication_error(make_provider: Make) -> None:
    with pytest.raises(AuthenticationError, match="scope GIGACHAT_API_CORP"):
        await make_provider(scope="CORP").chat(HELLO)


async def test_preissued_access_token(make_provider: Make, emulator) -> None:
    provider = make_provider(api_key=None, access_token=emulator.issue_token())
    assert (await provider.chat(HELLO)).text
    assert emulator.oauth_count == 0
    emulator.expire_tokens()
    with pytest.raises(AuthenticationError, match="GIGACHAT_ACCESS_TOKEN"):
        await provider.chat(HELLO)


async def test_preissued_token_falls_back_to_the_key(make_provider: Make, emulator) -> None:
    provider = make_provider(access_token="stale-token-value")
    assert (await provider.chat(HELLO)).text
    assert emulator.oauth_count == 1


async def test_user_password_auth(make_provider: Make, emulator) -> None:
    provider = make_provider(api_key=None, user=emulator.user, password=emulator.password)
    assert (await provider.chat(HELLO)).text
    token_call = next(r for r in emulator.requests if r.path == "/api/v1/token")
    assert token_call.headers["authorization"].startswith("Basic ")
    bad = make_provider(api_key=None, user="someone", password="wrong-password")
    with pytest.raises(AuthenticationError, match="rejected user 'someone'"):
        await bad.chat(HELLO)
    emulator.fail_next_oauth(503)
    with pytest.raises(ServiceUnavailableError):
        await make_provider(api_key=None, user=emulator.user, password=emulator.password).chat(
            HELLO
        )


async def test_token_endpoint_without_token_is_an_error(make_provider: Make, server) -> None:
    provider = make_provider(auth_url=f"{server.base_url}/api/v1/models")
    with pytest.raises(ProviderError):
        await provider.chat(HELLO)


# -- other endpoints -----------------------------------------------------------------------


async def test_health_check_uses_models_never_a_completion(provider, emulator) -> None:
    assert await provider.health_check() is True
    assert [r.path for r in emulator.requests if r.path != "/api/v2/oauth"] == ["/api/v1/models"]
    emulator.outage = True
    assert await provider.health_check() is False


async def test_list_models_and_count_tokens(provider) -> None:
    models = await provider.list_models()
    assert {"GigaChat-2-Max", "Embeddings"} <= {m.id for m in models}
    assert next(m for m in models if m.id == "Embeddings").type == "embedder"
    counts = await provider.count_tokens(["Hello, world", "one"])
    assert [c.tokens for c in counts] == [3, 1]
    assert counts[0].characters == 12
    assert [c.tokens for c in await provider.count_tokens("a b")] == [2]
    with pytest.raises(InvalidRequestError):
        await provider.count_tokens([])


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server() -> object:
    with LoopbackServer(GigaChatEmulator(), tls=True) as running:
        yield running


async def test_tls_with_custom_ca_bundle(tls_server) -> None:
    provider = GigaChatProvider(config_for(tls_server, max_retries=0))
    assert provider.config.ca_bundle_file == tls_server.ca_file
    assert (await provider.chat(HELLO)).text
    async for _ in provider.stream(HELLO):
        pass
    await provider.aclose()


async def test_tls_without_the_ca_fails_as_transport_error(tls_server) -> None:
    provider = GigaChatProvider(config_for(tls_server, max_retries=0, ca_bundle_file=None))
    with pytest.raises(TransportError, match="token request"):
        await provider.chat(HELLO)


async def test_verify_ssl_false_warns_once_and_connects(tls_server, caplog) -> None:
    caplog.set_level("WARNING")
    provider = GigaChatProvider(
        config_for(tls_server, max_retries=0, ca_bundle_file=None, verify_ssl=False)
    )
    await provider.chat(HELLO)
    await provider.chat(HELLO)
    warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1


def test_bad_tls_files_are_rejected_at_construction(tmp_path, server) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        GigaChatProvider(config_for(server, ca_bundle_file=str(tmp_path / "missing.pem")))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="not a PEM CA bundle"):
        GigaChatProvider(config_for(server, ca_bundle_file=str(junk)))
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        GigaChatProvider(config_for(server, cert_file=str(junk)))
    with pytest.raises(ConfigurationError, match="needs cert_file"):
        GigaChatProvider(config_for(server, key_file=str(junk)))


async def test_mtls_handshake_with_client_certificate() -> None:
    """A server that demands a client certificate: with cert_file/key_file the whole OAuth +
    chat exchange works over mutual TLS; without them the handshake is refused."""
    with LoopbackServer(GigaChatEmulator(), tls=True, client_certs=True) as mtls:
        provider = GigaChatProvider(
            config_for(mtls, cert_file=mtls.client_cert_file, key_file=mtls.client_key_file)
        )
        assert (await provider.chat(HELLO)).text
        await provider.aclose()
        anonymous = GigaChatProvider(config_for(mtls, max_retries=0))
        with pytest.raises(ProviderError) as info:
            await anonymous.chat(HELLO)
        assert info.value.transient  # a refused handshake is a transport failure
        await anonymous.aclose()


# -- sequences -----------------------------------------------------------------------------


async def test_scripted_sequence(make_provider: Make, emulator) -> None:
    provider = make_provider(max_retries=3, backoff_base=0, backoff_max=0)
    emulator.script(Fail(503), Fail(429), Pass(), Fail(500))
    assert (await provider.chat(HELLO)).text  # 503, 429, then success
    assert emulator.request_count == 3
    assert (await provider.chat(HELLO)).text  # 500 then success
    assert emulator.request_count == 5


async def test_refreshed_tokens_keep_the_secret_registry_bounded(
    make_provider: Make, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, defect 12: each refresh registers the new token as an ephemeral secret, so
    a process refreshing for months keeps a bounded set (the newest token stays masked)."""
    from orchestrator import _secrets

    registry = _secrets.SecretRegistry(ephemeral_limit=3)
    monkeypatch.setattr(_secrets, "_registry", registry)
    provider = make_provider()
    for _ in range(8):
        provider.tokens.expire()
        await provider.chat(HELLO)
    assert emulator.oauth_count >= 8
    current = provider.tokens.current()
    assert current is not None and current.value in registry
    assert len(registry) <= 3 + 2  # the ephemeral tokens plus the config's credentials
    assert _secrets.redact(f"token {current.value}") == "token ***"
