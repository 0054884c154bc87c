"""Pure unit tests: header parsing and the emulator's text invariants."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.sse import drain
from orchestrator_gigachat.emulator import _pieces, _truncate, count_tokens
from orchestrator_gigachat.errors import api_error, retry_after_of
from orchestrator_gigachat.sse import EventReader


def response(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers, text=text)


def test_retry_after_forms() -> None:
    assert retry_after_of(response(429, {"Retry-After": "7"})) == 7
    assert retry_after_of(response(429)) is None
    assert retry_after_of(response(429, {"Retry-After": "soon"})) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 20 < (retry_after_of(response(429, {"Retry-After": later})) or 0) <= 31


def test_non_json_error_body_from_a_proxy() -> None:
    error = api_error(response(502, text="<html> Bad   gateway </html>"), provider="g")
    assert "<html> Bad gateway </html>" in str(error) and error.transient
    assert "Bad Gateway" in str(api_error(response(502), provider="g"))


@given(st.text(max_size=200), st.integers(min_value=1, max_value=5))
def test_stream_pieces_join_back(text: str, size: int) -> None:
    assert "".join(_pieces(text, size)) == text


@given(st.text(max_size=200), st.integers(min_value=1, max_value=50))
def test_truncation_respects_max_tokens(text: str, limit: int) -> None:
    cut, was_cut = _truncate(text, limit)
    assert text.startswith(cut)
    assert count_tokens(cut) <= limit
    assert was_cut == (count_tokens(text) > limit)


class _Raw:
    """An async byte iterator over fixed pieces (what ``response.aiter_raw()`` gives)."""

    def __init__(self, *pieces: bytes) -> None:
        self._pieces = list(pieces)

    def __aiter__(self) -> _Raw:
        return self

    async def __anext__(self) -> bytes:
        if not self._pieces:
            raise StopAsyncIteration
        return self._pieces.pop(0)


async def _all(reader: EventReader) -> list[str]:
    found = []
    while (data := await reader.next_data()) is not None:
        found.append(data)
    return found


@pytest.mark.anyio
async def test_sse_reader_follows_the_spec() -> None:
    raw = _Raw(
        b": keep-alive\r\n\r\n",
        b'event: message\r\nid: 1\r\ndata: {"a":',
        b" 1}\r\n\r\ndata: line one\ndata:line two\n\n",
        "data: привет".encode()[:-1],  # a multi-byte character split across reads
        "data: привет".encode()[-1:] + b"\n\nretry: 10\nnonsense\n\n",
        b"data: [DONE]",  # the end of the body dispatches a pending event
    )
    assert await _all(EventReader(raw)) == [
        '{"a": 1}',
        "line one\nline two",
        "data: привет".removeprefix("data: "),
        "[DONE]",
    ]


@pytest.mark.anyio
async def test_sse_reader_empty_stream_and_finish() -> None:
    assert await _all(EventReader(_Raw())) == []
    raw = _Raw(b"a", b"b")
    await drain(raw)
    assert await _all(EventReader(raw)) == []
