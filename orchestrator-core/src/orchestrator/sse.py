"""Server-sent events from an ``httpx`` response: :class:`EventReader` and :func:`drain`.

Use it instead of ``response.aiter_lines()`` for an SSE stream::

    raw = response.aiter_bytes()
    reader = EventReader(raw)
    try:
        while (data := await reader.next_data()) is not None:
            ...  # one event's data, e.g. json.loads(data)
    finally:
        await release(response, raw)

Why not ``aiter_lines()``: httpx splits lines like ``str.splitlines`` — also on U+2028,
U+2029, U+0085 and other Unicode line breaks, which a server may send raw inside a JSON
string (Python's ``json.dumps(..., ensure_ascii=False)`` and most encoders other than Go's
do), and the event's JSON then arrives cut in two. Here lines end at CR, LF or CRLF only, as
the SSE specification says; an event's several ``data:`` lines are joined with ``\\n``;
comments (``:``) and the other fields (``event``, ``id``, ``retry``) are skipped.

The reader is a plain object pulling from ``response.aiter_bytes()``: no nested async
generators that an abandoned stream would leave to the garbage collector (trio reports
those), and pieces of a long line are joined once (linear time). :func:`drain` runs httpx's
own generator chain to its end once the response is closed, for the same reason, and
:func:`release` does both, shielded, whenever the body was not read to its end.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    import httpx

__all__ = ["EventReader", "LineSplitter", "drain", "release"]


class LineSplitter:
    """Incremental CR/LF/CRLF line splitting of decoded text (linear in the input)."""

    __slots__ = ("_cr", "_pending")

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._cr = False  # the last piece ended in CR: a following LF belongs to it

    def feed(self, text: str) -> list[str]:
        """The lines completed by ``text`` (without their line ends)."""
        if not text:
            return []
        if self._cr and text[0] == "\n":
            text = text[1:]
        self._cr = text.endswith("\r")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        parts = text.split("\n")
        if len(parts) == 1:
            if parts[0]:
                self._pending.append(parts[0])
            return []
        if self._pending:
            self._pending.append(parts[0])
            parts[0] = "".join(self._pending)
            self._pending = []
        tail = parts.pop()
        if tail:
            self._pending.append(tail)
        return parts

    def flush(self) -> list[str]:
        """The last line if the text did not end with a line end."""
        if not self._pending:
            return []
        line = "".join(self._pending)
        self._pending = []
        return [line]


class EventReader:
    """The lines and the events' ``data`` of an SSE byte stream (UTF-8; invalid bytes
    become U+FFFD)."""

    __slots__ = ("_decoder", "_done", "_lines", "_raw", "_splitter")

    def __init__(self, raw: AsyncIterator[bytes]) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._splitter = LineSplitter()
        self._lines: list[str] = []
        self._done = False

    async def next_line(self) -> str | None:
        """The next line, or None at the end of the body."""
        while not self._lines:
            if self._done:
                return None
            try:
                chunk = await anext(self._raw)
            except StopAsyncIteration:
                self._done = True
                tail = self._decoder.decode(b"", final=True)
                self._lines = [*self._splitter.feed(tail), *self._splitter.flush()]
            else:
                self._lines = self._splitter.feed(self._decoder.decode(chunk))
            self._lines.reverse()
        return self._lines.pop()

    async def next_data(self) -> str | None:
        """The next event's data, or None at the end of the stream. An event is its
        ``data:`` lines up to a blank line (or the end of the body)."""
        data: list[str] = []
        while True:
            line = await self.next_line()
            if line is None:
                return "\n".join(data) if data else None
            if not line:
                if data:
                    return "\n".join(data)
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))


async def drain(raw: AsyncIterator[bytes]) -> None:
    """Run httpx's generator chain behind ``raw`` to its end (for at most a second) after
    the response was closed: an abandoned half-read chain makes trio warn when it is
    collected. Never raises."""
    with anyio.move_on_after(1.0):
        try:
            while True:
                await anext(raw)
        except Exception:  # noqa: S110 - a closed stream ends the chain with an error: wanted
            pass


async def release(response: httpx.Response, raw: AsyncIterator[bytes]) -> None:
    """Close ``response`` and :func:`drain` ``raw``, shielded: a cancelled or abandoned
    stream still releases its connection. A body read to its end needs neither (httpx
    closed the response, the generator chain is done), so then nothing is awaited and no
    cancel scope is entered (each costs about 5 µs a stream on asyncio)."""
    if response.is_closed and getattr(raw, "ag_frame", True) is None:
        return
    with anyio.CancelScope(shield=True):
        await response.aclose()
        await drain(raw)
