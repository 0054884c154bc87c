"""A request hook that every provider's HTTP client gets (see ``BaseProvider.http_client``).

httpx iterates an in-memory request body with an async generator. When a write fails part-way
(a refused TLS handshake, a connection reset, a write timeout) httpcore abandons that
generator, and under trio its garbage collection raises a ResourceWarning about an unfinished
async generator (encode/httpx#3686). The hook swaps the body for a plain iterator object that
sends the same bytes and needs no finalizer.
"""

from __future__ import annotations

import httpx


class _Body(httpx.AsyncByteStream):
    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    def __aiter__(self) -> _Once:
        return _Once(self._body)


class _Once:
    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> _Once:
        return self

    async def __anext__(self) -> bytes:
        body, self._body = self._body, None
        if body is None:
            raise StopAsyncIteration
        return body


async def plain_request_body(request: httpx.Request) -> None:
    # An empty body (a GET) is never iterated, so it keeps httpx's own stream.
    if type(request.stream) is httpx.ByteStream and request.content:
        request.stream = _Body(request.content)
