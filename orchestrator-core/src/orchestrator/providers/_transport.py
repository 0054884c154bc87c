"""The transport every provider client sends through (see ``BaseProvider.http_client``).

:class:`ProviderTransport` wraps the client's real transport and does two things that each
request needs, in one place:

* **A plain request body.** httpx iterates an in-memory body with an async generator. When
  a write fails part-way (a refused TLS handshake, a connection reset, a write timeout)
  httpcore abandons that generator, and under trio its garbage collection raises a
  ResourceWarning about an unfinished async generator (encode/httpx#3686). The body is sent
  through a plain iterator object instead, which carries the same bytes and needs no
  finalizer.

* **A connection pool that survives native asyncio cancellation** (encode/httpcore#1093).
  httpcore's pool is written for anyio's cancellation: level-triggered, never delivered
  inside a shielded scope, never delivered to a task whose wake-up is already due.
  ``asyncio.wait_for``, ``asyncio.timeout`` and ``Task.cancel`` obey none of that. A
  cancellation that lands after the pool handed a waiting request a new connection but
  before the request ran (``wait_for_connection``), or in the cancel-shielded checkpoint of
  a new connection's state lock right after it connected, leaves a connection that is
  neither idle, nor closed, nor owned by any request. The pool never reclaims it; once
  ``max_connections`` of them pile up, every later request waits for a slot forever. A
  second cancellation landing in httpcore's shielded clean-up after a cancelled body read
  can leave a connection active, or a request queued, for good in the same way.

  After a request that failed or was cancelled, and after a response whose connection is
  left neither idle nor closed, the wrapper restores the pool's invariant: every connection
  is idle, closed, or owned by a live request. Orphans are taken out of the pool (a
  synchronous step that no cancellation can interrupt) and closed; the request of a closed
  response is dequeued. A call that succeeds pays one constant-time check per response;
  running each request in a task of its own instead would cost about as much as the rest of
  the provider's overhead. It needs httpcore's pool (an ``httpx.AsyncHTTPTransport``);
  other transports (a ``MockTransport``, the aiohttp transport, which is asyncio-native)
  are passed through.

* **No socket left open by a cancelled TLS handshake.** httpcore's ``start_tls`` closes the
  TCP stream when the handshake raises an ``Exception``, but not when it is cancelled (a
  ``BaseException``), and nothing else closes it: the socket is left to the garbage
  collector (a ResourceWarning; found by the soak, with anyio scopes as well as asyncio's
  ``wait_for``, on both backends). The pool's network backend is wrapped so each new
  stream's ``start_tls`` closes it, shielded, whatever ends the handshake; the stream itself
  is httpcore's own, so reads and writes pay nothing.

The aiohttp transport (``http_transport = "aiohttp"``, asyncio only): :func:`use_aiohttp`
replaces the client's httpx transport with
:class:`~orchestrator.providers._aiohttp.AiohttpTransport` (one aiohttp session, the TLS
context httpx built from ``verify``/``cert``, the same connection limit and keep-alive
expiry), and makes a plain ``httpx.AsyncClient`` an
:class:`~orchestrator.providers._aiohttp.AiohttpClient`, which builds its requests and sends
them to that transport without httpx's send machinery when that machinery has nothing to
do (no auth, no hooks, no redirects followed, no proxy). Providers still get
``httpx.AsyncClient``, ``httpx.Request`` and ``httpx.Response`` objects, the httpx
exceptions httpx's transport raises, and the same bytes on the wire; see that module.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

import anyio
import httpx

if TYPE_CHECKING:
    import httpcore

__all__ = [
    "ProviderTransport",
    "close_abandoned",
    "pool_of",
    "use_aiohttp",
    "wrap_transports",
]


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


def pool_of(transport: httpx.AsyncBaseTransport) -> httpcore.AsyncConnectionPool | None:
    """httpcore's connection pool behind ``transport`` (unwrapping a ProviderTransport), or
    None for a transport without one. For tests and diagnostics: ``pool_of(t).connections``.
    """
    if isinstance(transport, ProviderTransport):
        transport = transport.inner
    import httpcore

    pool = getattr(transport, "_pool", None)
    return pool if isinstance(pool, httpcore.AsyncConnectionPool) else None


def _orphans(pool: Any, finished: Any = None) -> list[Any]:
    """Take the connections nobody owns out of ``pool``, and dequeue ``finished`` (the pool
    request of a closed response). Synchronous: no cancellation can cut it short."""
    requests = pool._requests
    if finished is not None and finished in requests:
        requests.remove(finished)
    owned = {id(request.connection) for request in requests}
    orphans = [
        connection
        for connection in pool._connections
        if id(connection) not in owned and not connection.is_idle() and not connection.is_closed()
    ]
    for connection in orphans:
        pool._connections.remove(connection)
    return orphans


async def _repair(pool: Any, finished: Any = None) -> None:
    try:
        orphans = _orphans(pool, finished)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - another httpcore
        return
    if not orphans:
        return
    with anyio.CancelScope(shield=True):
        for connection in orphans:
            # Closing marks the connection closed and closes its socket before its first
            # await, so even a native cancellation here leaves nothing open.
            with contextlib.suppress(Exception):
                await connection.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    """A response body: iterated as it is; closing it checks the connection it used."""

    __slots__ = ("_inner", "_pool")

    def __init__(self, inner: httpx.AsyncByteStream, pool: Any) -> None:
        self._inner = inner
        self._pool = pool

    def __aiter__(self) -> Any:
        return self._inner.__aiter__()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            # httpx's stream -> httpcore's PoolByteStream -> its pool request.
            request = getattr(getattr(self._inner, "_httpcore_stream", None), "_pool_request", None)
            connection = getattr(request, "connection", None)
            # A closed HTTP/1.1 response leaves its connection idle (reusable) or closed and
            # its request out of the queue; anything else means a cancellation cut
            # httpcore's clean-up short (a second native cancellation inside its shielded
            # close skips the dequeue, and the request would sit in the pool for good).
            if request is not None and (
                request in self._pool._requests
                or (connection is not None and not (connection.is_idle() or connection.is_closed()))
            ):
                await _repair(self._pool, request)


class _ClosingStartTLS:
    """A stream's ``start_tls`` that closes the stream however the handshake ends. An object
    with two slots rather than a closure: every connection keeps one for its lifetime."""

    __slots__ = ("_start_tls", "_stream")

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._start_tls = stream.start_tls

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._start_tls(*args, **kwargs)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise


class _ClosingBackend:
    """httpcore's network backend, with streams whose ``start_tls`` closes them however the
    handshake ends (see the module docstring)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @staticmethod
    def _guarded(stream: Any) -> Any:
        stream.start_tls = _ClosingStartTLS(stream)  # an instance attribute shadows the method
        return stream

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(await self._inner.connect_tcp(*args, **kwargs))

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(await self._inner.connect_unix_socket(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class ProviderTransport(httpx.AsyncBaseTransport):
    """Wraps a provider client's transport: plain request bodies, and a pool that survives
    native asyncio cancellation (see the module docstring)."""

    __slots__ = ("_pool", "inner")

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        #: The wrapped transport.
        self.inner = inner
        self._pool = pool_of(inner)
        backend = getattr(self._pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _ClosingBackend):
            self._pool._network_backend = _ClosingBackend(backend)  # type: ignore[union-attr]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # An empty body (a GET) is never iterated, so it keeps httpx's own stream.
        # read(): a redirect's request has its body as a stream not read yet
        if type(request.stream) is httpx.ByteStream and request.read():
            request.stream = _Body(request.content)
        pool = self._pool
        if pool is None:
            return await self.inner.handle_async_request(request)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            await _repair(pool)
            raise
        response.stream = _ResponseStream(response.stream, pool)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def wrap_transports(client: httpx.AsyncClient) -> None:
    """Route every request of ``client`` through a :class:`ProviderTransport` (its own
    transport and any mounted one, e.g. a proxy from the environment)."""
    transport = client._transport
    if not isinstance(transport, ProviderTransport):
        client._transport = ProviderTransport(transport)
    client._mounts = {
        pattern: (
            ProviderTransport(mounted)
            if mounted is not None and not isinstance(mounted, ProviderTransport)
            else mounted
        )
        for pattern, mounted in client._mounts.items()
    }


def use_aiohttp(client: httpx.AsyncClient) -> None:
    """Swap ``client``'s transport, httpx's own, for an aiohttp one with the same TLS
    context (CA bundle, client certificate, verification) and pool limits, and give a plain
    ``httpx.AsyncClient`` the direct path to it (``orchestrator.providers._aiohttp``).
    Mounted transports (proxies) keep httpx's. Call it on asyncio only."""
    transport = client._transport
    pool = pool_of(transport)
    if type(transport) is not httpx.AsyncHTTPTransport or pool is None:
        return
    # Imported here: a client on httpx's own transport never needs the aiohttp module.
    from orchestrator.providers._aiohttp import AiohttpTransport, install

    limit = pool._max_connections
    client._transport = AiohttpTransport(
        # The context httpx built from the client's verify= and cert=.
        pool._ssl_context,
        max_connections=None if limit == sys.maxsize else limit,
        keepalive_expiry=pool._keepalive_expiry,
    )
    install(client)


def _socket_transport(transport: Any) -> Any:
    """The socket transport under an asyncio TLS transport (itself otherwise)."""
    while hasattr(transport, "_ssl_protocol"):
        transport = transport._ssl_protocol._transport
    return transport


def _aiohttp_transports(transport: Any) -> list[Any]:
    """The asyncio transports of an aiohttp transport's connections; marks its
    connector closed (it cannot close them itself once its loop is closed)."""
    connector = getattr(getattr(transport, "session", None), "connector", None)
    if connector is None or not hasattr(connector, "_conns"):
        return []
    protocols = [proto for conns in connector._conns.values() for proto, _ in conns]
    protocols += list(getattr(connector, "_acquired", ()))
    with contextlib.suppress(Exception):
        connector._close()  # on a closed loop: only marks it closed
    return [
        _socket_transport(proto.transport)
        for proto in protocols
        if getattr(proto, "transport", None) is not None
    ]


def _asyncio_transports(client: httpx.AsyncClient) -> list[Any]:
    """The asyncio socket transports of ``client``'s pooled connections."""
    found = []
    for transport in [client._transport, *client._mounts.values()]:
        inner = transport.inner if isinstance(transport, ProviderTransport) else transport
        found += _aiohttp_transports(inner)
        pool = pool_of(transport) if transport is not None else None
        for connection in pool.connections if pool is not None else ():
            # AsyncHTTPConnection -> AsyncHTTP11Connection -> httpcore's AnyIOStream ->
            # anyio's TLSStream (HTTPS) -> anyio's SocketStream -> the asyncio transport.
            network = getattr(getattr(connection, "_connection", None), "_network_stream", None)
            stream: Any = getattr(network, "_stream", None)
            while hasattr(stream, "transport_stream"):
                stream = stream.transport_stream
            socket_transport = getattr(stream, "_transport", None)
            if socket_transport is not None:
                found.append(socket_transport)
    return found


def close_abandoned(client: httpx.AsyncClient) -> None:
    """Close ``client``'s sockets without an event loop: its asyncio loop was closed without
    being shut down, so nothing can be awaited on it again. Left open, each socket would be
    reported (a ResourceWarning) whenever the garbage collector got to it."""
    for socket_transport in _asyncio_transports(client):
        with contextlib.suppress(Exception):
            # Stops reading; fails where it schedules the rest on the closed loop.
            socket_transport.close()
        lost = getattr(socket_transport, "_call_connection_lost", None)
        if lost is not None and getattr(socket_transport, "_sock", None) is not None:
            with contextlib.suppress(Exception):
                lost(None)  # what close() would have run on the loop: closes the socket
