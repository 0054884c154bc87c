"""Issue 11 defect 4: any body YandexGPT or a proxy can send ends as a valid Completion/Chunk
or a typed ProviderError/StreamError (hypothesis over arbitrary JSON and near-miss shapes,
for answers, NDJSON stream lines and error bodies), plus Retry-After as an HTTP date."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.boundary import EXCERPT_LIMIT
from orchestrator.config import Secret
from orchestrator.errors import ProviderError, RateLimitError, StreamError
from orchestrator.types import Chunk, Completion, Message, Usage
from orchestrator_yandexgpt import YandexGPTConfig, YandexGPTProvider
from orchestrator_yandexgpt.errors import error_from_response, parse_error_body
from orchestrator_yandexgpt.provider import parse_alternative, parse_completion

FOLDER = "b1gexamplefolder"
FINISH_REASONS = {"stop", "length", "content_filter", "tool_calls", "function_call", "error"}
STATUSES = [
    "ALTERNATIVE_STATUS_PARTIAL",
    "ALTERNATIVE_STATUS_FINAL",
    "ALTERNATIVE_STATUS_TRUNCATED_FINAL",
    "ALTERNATIVE_STATUS_CONTENT_FILTER",
    "ALTERNATIVE_STATUS_UNSPECIFIED",
]

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


counts = maybe(st.integers(min_value=0, max_value=10**6).map(str))
usages = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "inputTextTokens": counts,
            "completionTokens": counts,
            "totalTokens": counts,
            "completionTokensDetails": maybe(st.fixed_dictionaries({"reasoningTokens": counts})),
        },
    )
)
alternatives = maybe(
    st.fixed_dictionaries(
        {
            "message": maybe(
                st.fixed_dictionaries(
                    {"role": maybe(st.just("assistant")), "text": maybe(st.text(max_size=20))}
                )
            ),
            "status": maybe(st.sampled_from(STATUSES)),
        }
    )
)
results = maybe(
    st.fixed_dictionaries(
        {"alternatives": maybe(st.lists(alternatives, max_size=2))},
        optional={"usage": usages, "modelVersion": json_values},
    )
)
lines = st.one_of(results.map(lambda r: {"result": r}), results, json_values)
error_bodies = maybe(
    st.one_of(
        st.fixed_dictionaries(
            {"code": json_values, "message": json_values},
            optional={
                "details": maybe(st.lists(maybe(st.fixed_dictionaries({"requestId": json_values}))))
            },
        ),
        st.fixed_dictionaries(
            {
                "error": maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "grpcCode": json_values,
                            "httpCode": json_values,
                            "message": json_values,
                            "httpStatus": json_values,
                        },
                    )
                )
            }
        ),
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


def _parse(result: Any) -> None:
    try:
        completion = parse_completion(result, provider="y", model="gpt://f/m", request_id="r")
    except ProviderError as exc:
        assert exc.provider == "y"
    else:
        assert_valid(completion)


@given(json_values)
def test_completion_parser_on_any_json(result: Any) -> None:
    _parse(result)


@given(results)
def test_completion_parser_on_near_misses(result: Any) -> None:
    _parse(result)


@given(st.one_of(results, json_values))
def test_alternative_parser_never_raises(result: Any) -> None:
    alternative = parse_alternative(result)
    if alternative is not None:
        assert isinstance(alternative.text, str) and isinstance(alternative.status, str)
        assert valid_usage(alternative.usage)


@pytest.mark.parametrize(
    "result",
    [
        {"alternatives": [None]},
        {"alternatives": [{"message": "hi"}]},
        {"alternatives": [{"message": {"text": 5}}]},
        {"alternatives": [{"message": {"text": "x"}, "status": 3}]},
        {"alternatives": "abc"},
    ],
)
def test_wrong_shapes_are_provider_errors(result: Any) -> None:
    with pytest.raises(ProviderError, match="alternatives"):
        parse_completion(result, provider="y", model="m", request_id=None)


def test_garbled_usage_is_dropped_not_reported_wrong() -> None:
    result = {
        "alternatives": [{"message": {"text": "hi"}, "status": "ALTERNATIVE_STATUS_FINAL"}],
        "usage": {"inputTextTokens": "n/a", "completionTokens": "2", "totalTokens": "3"},
    }
    completion = parse_completion(result, provider="y", model="m", request_id=None)
    assert completion.text == "hi" and completion.usage is None
    result["usage"] = {"inputTextTokens": "1", "completionTokens": "2", "totalTokens": "3"}
    usage = parse_completion(result, provider="y", model="m", request_id=None).usage
    assert usage == Usage(1, 2, 3)


@given(st.integers(min_value=100, max_value=599), error_bodies)
def test_error_bodies_of_any_shape_are_typed_errors(status: int, body: Any) -> None:
    parse_error_body(body)
    error = error_from_response(status, json.dumps(body).encode(), provider="y", request_id="r")
    assert isinstance(error, ProviderError) and error.provider == "y"


@given(st.binary(max_size=50))
def test_error_bodies_that_are_not_json(content: bytes) -> None:
    assert isinstance(
        error_from_response(502, content, provider="y", request_id=None), ProviderError
    )


def test_a_key_echoed_across_the_cut_is_redacted_first() -> None:
    key = Secret("AQVNexampleexampleexampleexampleexample0123")
    page = "<html>" + "x" * (EXCERPT_LIMIT - 30) + f" Api-Key {key} rejected</html>"
    error = error_from_response(401, page.encode(), provider="y", request_id=None)
    assert key[:10] not in str(error) and "***" in str(error)


# -- through provider.chat/stream over httpx.MockTransport ------------------------------------


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


def _provider(handler: Any) -> YandexGPTProvider:
    config = YandexGPTConfig(
        name="y",
        api_key="AQVN-k",
        folder_id=FOLDER,
        base_url="https://llm.example",
        max_retries=0,
    )
    return YandexGPTProvider(config, transport=httpx.MockTransport(handler), environ={})


async def _run_stream(values: list[Any]) -> list[Chunk]:
    body = "".join(json.dumps(v) + "\n" for v in values).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Body(body))

    async with _provider(handler) as provider:
        return [c async for c in provider.stream([Message("user", "hi")])]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(lines, max_size=4))
def test_stream_on_any_lines_yields_chunks_or_a_typed_error(
    backend: str, values: list[Any]
) -> None:
    try:
        chunks = anyio.run(_run_stream, values, backend=backend)
    except ProviderError as exc:  # StreamError, or the typed error an error line carries
        assert exc.provider == "y"
        return
    assert chunks and chunks[-1].finish_reason is not None
    for chunk in chunks:
        assert_valid(chunk)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=lines)
def test_chat_on_any_body_is_a_completion_or_a_provider_error(backend: str, body: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(body).encode())

    async def main() -> Completion:
        async with _provider(handler) as provider:
            return await provider.chat([Message("user", "hi")])

    try:
        completion = anyio.run(main, backend=backend)
    except ProviderError as exc:
        assert exc.provider == "y"
        return
    assert_valid(completion)


@pytest.mark.anyio
async def test_null_alternative_in_a_stream_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="alternatives"):
        await _run_stream([{"result": {"alternatives": [None]}}])


@pytest.mark.anyio
async def test_retry_after_as_an_http_date_is_honoured() -> None:
    """The provider's own parser read seconds only; the core's reads HTTP dates too."""
    later = email.utils.formatdate(time.time() + 30, usegmt=True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, headers={"Retry-After": later}, json={"code": 8, "message": "slow"}
        )

    async with _provider(handler) as provider:
        with pytest.raises(RateLimitError) as caught:
            await provider.chat([Message("user", "hi")])
    assert 20 < (caught.value.retry_after or 0) <= 31
