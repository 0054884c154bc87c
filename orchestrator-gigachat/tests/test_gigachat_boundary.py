"""Issue 11 defect 4: any body GigaChat or a proxy can send ends as a valid Completion/Chunk or
a typed ProviderError/StreamError (hypothesis over arbitrary JSON and near-miss shapes),
plus the boundary's GigaChat hints (TLS) and redaction of error bodies."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.boundary import EXCERPT_LIMIT
from orchestrator.config import Secret
from orchestrator.errors import (
    ProviderError,
    StreamError,
    TransportConfigurationError,
)
from orchestrator.testing import LoopbackServer
from orchestrator.types import Chunk, Completion, Message, Usage
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat.config import GigaChatConfig
from orchestrator_gigachat.emulator import GigaChatEmulator, config_for
from orchestrator_gigachat.errors import api_error
from orchestrator_gigachat.provider import parse_completion, parse_event

FINISH_REASONS = {"stop", "length", "content_filter", "tool_calls", "function_call", "error"}

#: Any JSON value, including what Python's json emits for NaN and infinities.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the valid shape, sometimes any JSON value in its place."""
    return st.one_of(valid, valid, json_values)


counts = maybe(st.integers(min_value=0, max_value=10**6))
usages = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": counts,
            "completion_tokens": counts,
            "total_tokens": counts,
            "precached_prompt_tokens": counts,
        },
    )
)
finish_reasons = maybe(st.sampled_from(["stop", "length", "blacklist", "function_call", None]))
messages = maybe(
    st.fixed_dictionaries(
        {"role": maybe(st.just("assistant")), "content": maybe(st.text(max_size=20))},
        optional={"function_call": json_values},
    )
)
completions = maybe(
    st.fixed_dictionaries(
        {
            "choices": maybe(
                st.lists(
                    maybe(
                        st.fixed_dictionaries(
                            {"message": messages, "finish_reason": finish_reasons},
                            optional={"index": json_values},
                        )
                    ),
                    max_size=2,
                )
            )
        },
        optional={"usage": usages, "model": json_values, "object": json_values},
    )
)
deltas = maybe(
    st.fixed_dictionaries(
        {}, optional={"content": maybe(st.text(max_size=20)), "role": json_values}
    )
)
events = maybe(
    st.fixed_dictionaries(
        {
            "choices": maybe(
                st.lists(
                    maybe(
                        st.fixed_dictionaries(
                            {"delta": deltas},
                            optional={"finish_reason": finish_reasons, "index": json_values},
                        )
                    ),
                    max_size=2,
                )
            )
        },
        optional={"usage": usages, "model": json_values},
    )
)


def valid_usage(usage: Usage | None) -> bool:
    if usage is None:
        return True
    main = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    extra = (usage.cached_prompt_tokens, usage.reasoning_tokens)
    return all(type(n) is int and n >= 0 for n in main) and all(
        n is None or (type(n) is int and n >= 0) for n in extra
    )


def assert_valid(result: Completion | Chunk) -> None:
    text = result.text if isinstance(result, Completion) else result.delta
    assert isinstance(text, str)
    assert result.finish_reason is None or result.finish_reason in FINISH_REASONS
    assert valid_usage(result.usage)
    assert result.request_id is None or isinstance(result.request_id, str)


def _parse(data: Any) -> None:
    try:
        completion = parse_completion(data, provider="g", model="GigaChat", request_id="r")
    except ProviderError as exc:
        assert exc.provider == "g" and not isinstance(exc, StreamError)
    else:
        assert_valid(completion)


@given(json_values)
def test_chat_parser_on_any_json(data: Any) -> None:
    _parse(data)


@given(completions)
def test_chat_parser_on_near_misses(data: Any) -> None:
    _parse(data)


@pytest.mark.parametrize(
    "data",
    [
        {"choices": [None]},
        {"choices": [{"message": "hi"}]},
        {"choices": [{"message": {"content": 5}}]},
        {"choices": [{"message": {"content": "hi"}, "finish_reason": ["stop"]}]},
        {"choices": "abc"},
        ["choices"],
    ],
)
def test_chat_parser_wrong_shapes_are_provider_errors(data: Any) -> None:
    with pytest.raises(ProviderError, match="choices"):
        parse_completion(data, provider="g", model=None, request_id=None)


def test_garbled_usage_is_dropped_not_reported_wrong() -> None:
    data = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": "n/a", "completion_tokens": 2, "total_tokens": 3},
    }
    completion = parse_completion(data, provider="g", model=None, request_id=None)
    assert completion.text == "hi" and completion.usage is None


def _event(data: str) -> None:
    fields = parse_event(data)
    if fields is not None:
        assert isinstance(fields.text, str)
        assert fields.finish_reason is None or isinstance(fields.finish_reason, str)
        assert valid_usage(fields.usage)


@given(json_values)
def test_event_parser_on_any_json(value: Any) -> None:
    _event(json.dumps(value))


@given(events)
def test_event_parser_on_near_misses(value: Any) -> None:
    _event(json.dumps(value))


@given(st.text(max_size=30))
def test_event_parser_on_any_text(data: str) -> None:
    _event(data)


@pytest.mark.parametrize(
    "event",
    [
        '{"choices":[null]}',
        '{"choices":[{"delta":"hi"}]}',
        '{"choices":[{"delta":{"content":5}}]}',
        '{"choices":[{"delta":{"content":"x"},"finish_reason":7}]}',
        "[" * 100_000,
    ],
)
def test_event_wrong_shapes_are_malformed(event: str) -> None:
    assert parse_event(event) is None


def test_event_with_garbled_usage_keeps_its_text() -> None:
    fields = parse_event(
        '{"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}],'
        '"usage":{"prompt_tokens":"n/a"}}'
    )
    assert fields is not None and (fields.text, fields.finish_reason, fields.usage) == (
        "x",
        "stop",
        None,
    )


# -- through provider.chat/stream over httpx.MockTransport ------------------------------------


def _provider(handler: Any) -> GigaChatProvider:
    config = GigaChatConfig(
        name="g",
        access_token="preissued-token",
        base_url="https://gc.example/api/v1",
        max_retries=0,
    )
    return GigaChatProvider(config, transport=httpx.MockTransport(handler))


class _Body(httpx.AsyncByteStream):
    """A streamed body (``content=`` would be read eagerly, and a stream reads it raw)."""

    def __init__(self, data: bytes) -> None:
        self._pieces = [data[i : i + 7] for i in range(0, len(data), 7)]

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        if not self._pieces:
            raise StopAsyncIteration
        return self._pieces.pop(0)


def _sse(values: list[Any], done: bool) -> bytes:
    lines = [f"data: {json.dumps(v)}\n\n" for v in values]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


async def _run_stream(values: list[Any], done: bool) -> list[Chunk]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Type": "text/event-stream"}, stream=_Body(_sse(values, done))
        )

    async with _provider(handler) as provider:
        return [c async for c in provider.stream([Message("user", "hi")])]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(events, json_values), max_size=4), done=st.booleans())
def test_stream_on_any_events_yields_chunks_or_a_stream_error(
    backend: str, values: list[Any], done: bool
) -> None:
    try:
        chunks = anyio.run(_run_stream, values, done, backend=backend)
    except StreamError as exc:
        assert exc.provider == "g"
        return
    assert chunks and chunks[-1].finish_reason is not None
    for chunk in chunks:
        assert_valid(chunk)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(completions, json_values))
def test_chat_on_any_body_is_a_completion_or_a_provider_error(backend: str, body: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(body).encode())

    async def main() -> Completion:
        async with _provider(handler) as provider:
            return await provider.chat([Message("user", "hi")])

    try:
        completion = anyio.run(main, backend=backend)
    except ProviderError as exc:
        assert exc.provider == "g"
        return
    assert_valid(completion)


@pytest.mark.anyio
async def test_choices_null_event_is_a_stream_error_the_router_can_fail_over() -> None:
    with pytest.raises(StreamError, match="malformed event"):
        await _run_stream([{"choices": [None]}], done=True)


# -- TLS hint and redaction ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_untrusted_certificate_names_the_russian_ca_and_is_not_retried() -> None:
    with LoopbackServer(GigaChatEmulator(), tls=True) as tls:
        provider = GigaChatProvider(config_for(tls, max_retries=3, ca_bundle_file=None))
        async with provider:
            with pytest.raises(TransportConfigurationError) as info:
                await provider.chat([Message("user", "hi")])
        assert provider.tokens.refreshes == 1  # not retried: retrying cannot fix it
    error = info.value
    assert not error.transient
    assert "Russian Trusted Root CA" in error.message
    assert "GIGACHAT_CA_BUNDLE_FILE" in error.message
    assert "check base_url and the network" not in error.message


def test_a_key_echoed_across_the_cut_is_redacted_first() -> None:
    key = Secret("MDE5ZTk4YzQtZDQxNy00ZjY0LWIxNDMtM2M1NmQ2ZWQ4YTRhOnNlY3JldA==")
    page = "<html>" + "x" * (EXCERPT_LIMIT - 30) + f" key {key} rejected</html>"
    response = httpx.Response(502, text=page)
    error = api_error(response, provider="g")
    assert key[:10] not in str(error) and "***" in str(error)
