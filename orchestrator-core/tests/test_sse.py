"""orchestrator.sse: SSE lines end at CR/LF/CRLF only, however the bytes are cut."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import AnyStr

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.sse import EventReader, LineSplitter, drain

pytestmark = pytest.mark.anyio

_TEXT = st.text(
    alphabet=st.sampled_from(["a", "\u0431", " ", ":", "\r", "\n", "\u2028", "\u2029", "\x85"])
)


def _cuts(data: AnyStr, sizes: list[int]) -> list[AnyStr]:
    pieces, start = [], 0
    for size in sizes:
        pieces.append(data[start : start + size])
        start += size
    pieces.append(data[start:])
    return pieces


async def _aiter(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _lines(text: str) -> list[str]:
    """The SSE specification's line splitting of a whole text."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines if lines[-1] else lines[:-1]


@given(text=_TEXT, sizes=st.lists(st.integers(0, 7), max_size=20))
def test_splitter_matches_the_specification_however_the_text_is_cut(
    text: str, sizes: list[int]
) -> None:
    splitter = LineSplitter()
    lines = [line for piece in _cuts(text, sizes) for line in splitter.feed(piece)]
    assert [*lines, *splitter.flush()] == _lines(text)


def test_unicode_line_breaks_inside_a_line_do_not_split_it() -> None:
    assert LineSplitter().feed('data: {"a": "x\u2028y\u2029z\x85w"}\r\n') == [
        'data: {"a": "x\u2028y\u2029z\x85w"}'
    ]


@given(text=_TEXT, sizes=st.lists(st.integers(0, 7), max_size=20))
async def test_reader_lines_however_the_bytes_are_cut(text: str, sizes: list[int]) -> None:
    reader = EventReader(_aiter(_cuts(text.encode(), sizes)))
    lines = []
    while (line := await reader.next_line()) is not None:
        lines.append(line)
    assert lines == _lines(text)


async def test_events_join_data_lines_and_skip_comments_and_other_fields() -> None:
    body = (
        b': keep-alive\n\nevent: message\nid: 1\nretry: 10\ndata: {"a":\ndata:  1}\n\n'
        b'data: {"t": "one\xe2\x80\xa8two\xc2\x85"}\r\n\r\ndata: [DONE]'
    )
    # Cut inside the multi-byte characters too.
    reader = EventReader(_aiter([body[i : i + 3] for i in range(0, len(body), 3)]))
    events = []
    while (data := await reader.next_data()) is not None:
        events.append(data)
    assert events == ['{"a":\n 1}', '{"t": "one\u2028two\x85"}', "[DONE]"]
    assert json.loads(events[1]) == {"t": "one\u2028two\x85"}


async def test_over_an_httpx_response_and_drained_after_close() -> None:
    body = 'data: {"t": "a\u2028b"}\n\ndata: [DONE]\n\n'.encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_aiter([body[:9], body[9:]]))

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        request = client.build_request("GET", "http://test/")
        response = await client.send(request, stream=True)
        raw = response.aiter_bytes()
        reader = EventReader(raw)
        first = await reader.next_data()
        await response.aclose()
        await drain(raw)
    assert first == '{"t": "a\u2028b"}'
