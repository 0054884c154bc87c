"""The shipped providers as benchmark subjects, and the raw-httpx request each one makes.

For every vendor: how to build its provider (public constructor, ``transport=``), the prompts
that make its emulator answer with a given number of chunks, and how raw httpx reads the same
stream (``aiter_lines()`` + ``json.loads`` of each event).

The raw request is not written by hand: the provider's own request is recorded once (URL,
headers, JSON body) and raw httpx sends exactly that, so raw and provider always make the same
request, whatever the provider's code becomes. In memory, the response bytes are the vendor
emulator's own answer to that request, recorded once and replayed by :class:`CannedTransport`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx

from orchestrator.providers import BaseProvider
from orchestrator.types import Message

# Headers httpx adds itself (raw httpx adds them too): not copied into the raw request.
_CLIENT_HEADERS = {
    "host",
    "content-length",
    "content-type",
    "accept-encoding",
    "connection",
    "user-agent",
}
_HOP_HEADERS = {b"content-length", b"transfer-encoding", b"connection"}


@dataclass(frozen=True)
class Scenario:
    """One request shape: a plain call or a stream of about ``chunks`` chunks."""

    key: str
    label: str
    stream: bool
    words: int = 0  # words in the prompt: the emulators echo it, one word a chunk
    word_size: int = 1  # characters a word: large chunks


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("call", "plain call", stream=False, words=1),
        Scenario("stream_short", "short stream", stream=True, words=1),
        Scenario("stream_1000", "1,000-chunk stream", stream=True, words=997),
        Scenario("stream_large", "large chunks (10 KB)", stream=True, words=40, word_size=10_000),
    )
}


def prompt(scenario: Scenario) -> tuple[Message, ...]:
    if scenario.key in ("call", "stream_short"):
        return (Message("user", "hi"),)
    word = "w" * scenario.word_size
    return (Message("user", " ".join([word] * scenario.words)),)


@dataclass
class Vendor:
    name: str
    make_emulator: Callable[[], Any]
    make_config: Callable[[str, Any, str | None], Any]  # base_url, emulator, token
    provider_class: type[BaseProvider]
    parse_raw_stream: Callable[[httpx.Response], Any]
    sse: bool
    provider_kwargs: dict[str, Any] = field(default_factory=dict)


async def _raw_sse(response: httpx.Response) -> int:
    """What a raw httpx user does with an SSE body: line iterator, json of each data line."""
    events = 0
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data = line[5:].lstrip()
            if data != "[DONE]":
                json.loads(data)
                events += 1
    return events


async def _raw_ndjson(response: httpx.Response) -> int:
    events = 0
    async for line in response.aiter_lines():
        if line:
            json.loads(line)
            events += 1
    return events


def _gigachat() -> Vendor:
    from orchestrator_gigachat import GigaChatProvider
    from orchestrator_gigachat.emulator import GigaChatEmulator, config_for

    def config(base_url: str, emulator: Any, token: str | None) -> Any:
        server = SimpleNamespace(app=emulator, base_url=base_url, tls=False, ca_file=None)
        return config_for(server, api_key=None, access_token=token)  # type: ignore[arg-type]

    return Vendor(
        "GigaChat",
        lambda: GigaChatEmulator(tokens_per_chunk=1),
        config,
        GigaChatProvider,
        _raw_sse,
        sse=True,
    )


def _yandexgpt() -> Vendor:
    from orchestrator_yandexgpt import YandexGPTProvider
    from orchestrator_yandexgpt.emulator import YandexGPTEmulator, config_for

    def config(base_url: str, emulator: Any, token: str | None) -> Any:
        server = SimpleNamespace(app=emulator, base_url=base_url, tls=False, ca_file=None)
        return config_for(server)  # type: ignore[arg-type]

    return Vendor(
        "YandexGPT",
        YandexGPTEmulator,
        config,
        YandexGPTProvider,
        _raw_ndjson,
        sse=False,
        provider_kwargs={"environ": {}},  # the YC_* variables of this shell stay out
    )


VENDORS: list[Callable[[], Vendor]] = [_gigachat, _yandexgpt]


# -- recording and replaying -------------------------------------------------------------


@dataclass
class Recorded:
    """The provider's request (for raw httpx to repeat) and the server's response."""

    url: str
    headers: dict[str, str]
    payload: Any
    status: int
    response_headers: list[tuple[bytes, bytes]]
    body: bytes


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to ``inner`` and keeps the last request and response in full."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.last: Recorded | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = await request.aread()
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _CLIENT_HEADERS}
        self.last = Recorded(
            str(request.url),
            headers,
            json.loads(sent) if sent else None,
            response.status_code,
            [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_HEADERS],
            body,
        )
        return httpx.Response(
            response.status_code, headers=self.last.response_headers, stream=_Pieces([body])
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


def split_events(body: bytes, sse: bool) -> list[bytes]:
    """The body as one read per event (what a socket gives while a model generates)."""
    sep = b"\n\n" if sse else b"\n"
    return [part + sep for part in body.split(sep) if part]


@dataclass
class CannedTransport(httpx.AsyncBaseTransport):
    """In-memory transport replaying one recorded answer per scenario (``current``).

    Like a real transport it reads the request body; it answers with the recorded status
    and headers and the recorded body (streams: one read per event).
    """

    answers: dict[str, tuple[int, list[tuple[bytes, bytes]], list[bytes]]] = field(
        default_factory=dict
    )
    current: str = ""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async for _ in request.stream:  # type: ignore[union-attr]
            pass
        status, headers, pieces = self.answers[self.current]
        return httpx.Response(status, headers=headers, stream=_Pieces(pieces))
