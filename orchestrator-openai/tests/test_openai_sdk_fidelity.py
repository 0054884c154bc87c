"""Fidelity check: the official ``openai`` client, pointed at the emulator, works unchanged.

The client is a test-only dependency (extra ``test`` of this package); without it the test
is skipped. Its retries are real: ``max_retries`` and the ``Retry-After`` family are the
client's own logic, and the emulator counts the requests it received.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_openai.emulator import OpenAIEmulator, answer_for

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    # asyncio only: under trio the client's own stream leaves its event generator to the
    # garbage collector (AsyncStream._iter_events), which trio reports; that is the client's
    # business, not the emulator's. Our provider runs on both (test_openai_contract.py).
    return "asyncio"


@pytest.fixture(params=[False, True], ids=["http", "https"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[OpenAIEmulator, object]]:
    app = OpenAIEmulator()
    with LoopbackServer(app, tls=request.param) as server:
        options = {}
        if server.tls:
            # The client's own HTTP stack, told to trust the emulator's throwaway CA.
            import httpx2  # type: ignore[import-not-found]

            context = ssl.create_default_context(cafile=server.ca_file)
            options["http_client"] = httpx2.AsyncClient(verify=context)
        client = openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=app.api_key, max_retries=2, **options
        )
        async with client:
            yield app, client


async def test_chat(served) -> None:
    app, client = served
    reply = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": "Привет!"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    assert reply.choices[0].message.content == answer_for([{"role": "user", "content": "Привет!"}])
    assert reply.choices[0].finish_reason == "stop"
    assert reply.object == "chat.completion"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply._request_id is not None and reply._request_id.startswith("req_")
    sent = app.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {app.api_key}"
    assert sent.json()["max_tokens"] == 50


async def test_max_tokens_cuts_with_length(served) -> None:
    _, client = served
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "OpenAI emulator"


async def test_stream_with_include_usage(served) -> None:
    _, client = served
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "OpenAI emulator: stream me"
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_usage_has_no_usage_chunk(served) -> None:
    _, client = served
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_mid_stream_error_event_raises_api_error(served) -> None:
    from orchestrator_openai.emulator import ErrorEvent

    app, client = served
    app.script(ErrorEvent(after_chunks=1, message="model crashed"))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    with pytest.raises(openai.APIError, match="model crashed"):
        async for _ in stream:
            pass


async def test_rate_limit_is_retried_after_the_servers_delay(served) -> None:
    app, client = served
    app.fail_next(429, retry_after_ms=10)
    app.fail_next(429, retry_after=0.01)
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content == "OpenAI emulator: x"
    assert app.request_count == 3
    retries = [r.headers.get("x-stainless-retry-count") for r in app.requests]
    assert retries == ["0", "1", "2"]


async def test_rate_limit_error_class_once_retries_run_out(served) -> None:
    app, client = served
    app.fail_next(429, times=3, retry_after=0.01, message="Rate limit reached for requests")
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in info.value.message
    assert info.value.request_id is not None
    assert app.request_count == 3  # the first call and max_retries=2


async def test_x_should_retry_false_stops_retries(served) -> None:
    app, client = served
    app.fail_next(500, should_retry=False)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert app.request_count == 1


async def test_long_retry_after_is_not_waited_for(served) -> None:
    app, client = served
    app.fail_next(429, retry_after=600)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert app.request_count == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "BadRequestError"),
        (401, "AuthenticationError"),
        (403, "PermissionDeniedError"),
        (404, "NotFoundError"),
        (422, "UnprocessableEntityError"),
        (500, "InternalServerError"),
        (503, "InternalServerError"),
    ],
)
async def test_error_classes(served, status: int, error: str) -> None:
    app, client = served
    app.fail_next(status)
    with pytest.raises(getattr(openai, error)) as info:
        await client.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and info.value.body["message"]


async def test_wrong_key_unknown_model_and_bad_request_unscripted(served) -> None:
    _app, client = served
    with pytest.raises(openai.AuthenticationError) as auth:
        await client.with_options(api_key="sk-wrong-key-000000").models.list()
    assert auth.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(
            model="gpt-9-imaginary", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            stream_options={"include_usage": True},
        )
    with pytest.raises(openai.BadRequestError, match="too short"):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])


async def test_models(served) -> None:
    app, client = served
    ids = [model.id async for model in client.models.list()]
    assert ids == list(app.models)
    model = await client.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "openai")
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")


async def test_api_key_scheme_and_project_header(served) -> None:
    app, client = served
    yandex_style = client.with_options(default_headers={"OpenAI-Project": "b1g-folder"})
    await yandex_style.models.list()
    assert app.requests[-1].headers["openai-project"] == "b1g-folder"
