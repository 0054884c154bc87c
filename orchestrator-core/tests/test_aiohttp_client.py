"""The aiohttp client path (orchestrator.providers._aiohttp): what a provider builds and
sends over it is what httpx builds and sends over its own transport.

* ``build_request`` builds the same request as httpx's (hypothesis);
* the bytes on the wire are the same (a raw server records them), and so is the response a
  provider gets back (status, headers, body, decoding, cookies, a redirect not followed);
* httpx's own ``send`` runs whenever it would do something (auth, event hooks, redirects
  followed, URL credentials, a streamed request body);
* failures raise the httpx exception httpx's transport raises for them;
* a cancellation or an early close leaves the pool usable.
"""

from __future__ import annotations

import datetime
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
import yarl
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from orchestrator.providers import _aiohttp
from orchestrator.providers._aiohttp import AiohttpClient, AiohttpTransport, install, mapped
from orchestrator.providers._transport import ProviderTransport, use_aiohttp, wrap_transports
from orchestrator.testing import LoopbackServer

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

Request = tuple[str, list[tuple[str, str]], bytes]  # request line, headers, body


# -- a raw HTTP/1.1 server that records what it receives ----------------------------------


class Wire:
    """Records each request (request line, header list in order, body) and answers by path;
    ``base_url`` once entered."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.release = anyio.Event()  # lets /stall and /endless finish
        self.base_url = ""

    async def _answer(self, stream: SocketStream, path: str) -> bool:
        """Answer one request; False to close the connection."""
        if path.startswith("/close"):
            return False  # hangs up without a response
        if path.startswith("/short"):
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            return False
        if path.startswith("/hang"):
            await self.release.wait()
            return False
        if path.startswith("/stall"):  # headers and part of the body, then nothing
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            await self.release.wait()
            return False
        if path.startswith("/endless") or path.startswith("/cut"):
            await stream.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            await stream.send(b"3\r\none\r\n")
            if path.startswith("/cut"):
                return False
            while not self.release.is_set():
                await stream.send(b"3\r\ntwo\r\n")
                await anyio.sleep(0.01)
            return False
        if path.startswith("/redirect"):
            head = b"HTTP/1.1 302 Found\r\nlocation: /ok\r\ncontent-length: 0\r\n\r\n"
            await stream.send(head)
            return True
        if path.startswith("/gzip"):
            body = gzip.compress(b'{"text": "zipped"}')
            head = b"content-encoding: gzip\r\ncontent-type: application/json\r\n"
        elif path.startswith("/cookie"):
            body, head = b"{}", b"set-cookie: session=s1; Path=/\r\n"
        else:
            body = b'{"text": "ok \xd1\x8b"}'
            head = b"content-type: application/json; charset=utf-8\r\nx-dup: 1\r\nX-Dup: 2\r\n"
        await stream.send(
            b"HTTP/1.1 200 OK\r\n" + head + b"content-length: %d\r\n\r\n" % len(body) + body
        )
        return True

    async def _serve(self, stream: SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while True:
                    head = (await reader.receive_until(b"\r\n\r\n", 65536)).decode()
                    line, *rest = head.split("\r\n")
                    headers = [(k, v) for k, _, v in (h.partition(": ") for h in rest)]
                    lower = {k.lower(): v for k, v in headers}
                    body = b""
                    if "content-length" in lower:
                        body = await reader.receive_exactly(int(lower["content-length"]))
                    elif lower.get("transfer-encoding") == "chunked":
                        while size := int(await reader.receive_until(b"\r\n", 16), 16):
                            body += await reader.receive_exactly(size)
                            await reader.receive_exactly(2)
                        await reader.receive_exactly(2)
                    self.requests.append((line, headers, body))
                    if not await self._answer(stream, line.split()[1]):
                        return
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                return

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Wire]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        self.base_url = f"http://127.0.0.1:{port}"
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, self._serve)
            try:
                yield self
            finally:
                self.release.set()
                group.cancel_scope.cancel()


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    async with Wire().running() as running:
        yield running


def client_pair(base_url: str, **settings: Any) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """(httpx over its own transport, the same client over aiohttp), as providers get them."""
    native = httpx.AsyncClient(base_url=base_url, **settings)
    over_aiohttp = httpx.AsyncClient(base_url=base_url, **settings)
    use_aiohttp(over_aiohttp)
    wrap_transports(over_aiohttp)
    return native, over_aiohttp


def transport_of(client: httpx.AsyncClient) -> AiohttpTransport:
    transport = client._transport
    assert isinstance(transport, ProviderTransport)
    assert isinstance(transport.inner, AiohttpTransport)
    return transport.inner


def assert_idle(client: httpx.AsyncClient) -> None:
    """No connection in use and nobody waiting for one."""
    session = transport_of(client).session
    assert session is not None
    connector: Any = session.connector
    assert not connector._acquired
    assert not any(connector._waiters.values())


# -- the request built ----------------------------------------------------------------------

header_names = st.sampled_from(["Accept", "accept", "X-Id", "x-id", "Authorization", "Host"])
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
bodies = st.one_of(
    st.just({}),
    st.builds(lambda v: {"json": v}, json_values),
    st.builds(lambda v: {"content": v}, st.binary(max_size=8)),
    st.builds(lambda v: {"content": v}, st.text(max_size=8)),
    st.builds(lambda v: {"data": v}, st.dictionaries(st.text(max_size=3), st.text(max_size=3))),
)


def same_request(a: httpx.Request, b: httpx.Request) -> None:
    assert (a.method, str(a.url), a.headers.raw, a.content, a.extensions) == (
        b.method,
        str(b.url),
        b.headers.raw,
        b.content,
        b.extensions,
    )
    assert type(a.stream) is type(b.stream)
    assert set(vars(a)) == set(vars(b))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base_url=st.sampled_from(["", "http://h.test", "https://h.test:8443/v1/", "http://h.test/a"]),
    client_headers=st.dictionaries(header_names, header_values, max_size=3),
    method=st.sampled_from(["GET", "POST", "put", "PATCH", "DELETE"]),
    url=st.sampled_from(["/chat", "chat?x=1", "/a b/ы", "http://other.test/p?q=a b", "", "/"]),
    headers=st.none() | st.dictionaries(header_names, header_values, max_size=3),
    body=bodies,
)
def test_builds_what_httpx_builds(
    anyio_backend: str,
    base_url: str,
    client_headers: dict[str, str],
    method: str,
    url: str,
    headers: dict[str, str] | None,
    body: dict[str, Any],
) -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    native = httpx.AsyncClient(base_url=base_url, headers=client_headers, transport=mock)
    fast = httpx.AsyncClient(base_url=base_url, headers=client_headers, transport=mock)
    install(fast)
    assert isinstance(fast, AiohttpClient)
    for _ in range(2):  # the second time from the URL cache
        try:
            expected = native.build_request(method, url, headers=headers, **body)
        except Exception as exc:
            with pytest.raises(type(exc)):
                fast.build_request(method, url, headers=headers, **body)
            return
        same_request(fast.build_request(method, url, headers=headers, **body), expected)


def test_cached_urls_follow_base_url(anyio_backend: str) -> None:
    fast = httpx.AsyncClient(base_url="http://a.test/v1")
    install(fast)
    assert str(fast.build_request("GET", "/x").url) == "http://a.test/v1/x"
    fast.base_url = "http://b.test/v2"  # type: ignore[assignment]
    assert str(fast.build_request("GET", "/x").url) == "http://b.test/v2/x"
    assert isinstance(fast, AiohttpClient)
    for i in range(_aiohttp._URLS_MAX + 5):  # bounded
        fast.build_request("GET", f"/{i}")
    assert len(fast._aiohttp_urls) <= _aiohttp._URLS_MAX


def test_what_it_does_not_speed_up_is_httpx_own(anyio_backend: str) -> None:
    fast = httpx.AsyncClient(base_url="http://a.test", params={"k": "1"}, cookies={"c": "v"})
    install(fast)
    request = fast.build_request("POST", "/x", files={"f": b"1"}, params={"p": "2"})
    assert request.url.params["k"] == "1" and request.url.params["p"] == "2"
    assert request.headers["cookie"] == "c=v"
    assert request.headers["content-type"].startswith("multipart/form-data")


def test_only_plain_clients_get_the_direct_path(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Own(httpx.AsyncClient):
        pass

    own = Own()
    use_aiohttp(own)
    assert type(own) is Own and isinstance(own._transport, AiohttpTransport)
    monkeypatch.setattr(_aiohttp, "_fast_ok", False)  # another httpx, other internals
    plain = httpx.AsyncClient()
    use_aiohttp(plain)
    assert type(plain) is httpx.AsyncClient and isinstance(plain._transport, AiohttpTransport)
    monkeypatch.setattr(_aiohttp, "_fast_ok", None)
    assert _aiohttp.fast_path_holds()


# -- the request sent, the response received --------------------------------------------------


async def stream_body() -> AsyncIterator[bytes]:
    yield b"ab"
    yield b"cd"


CASES: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
    ("POST", "/chat", lambda: {"json": {"m": "ы"}, "headers": {"Authorization": "Bearer t"}}),
    ("POST", "/raw", lambda: {"content": b"abc"}),  # no Content-Type: none is sent
    ("POST", "/form", lambda: {"data": {"a": "b c"}}),
    ("POST", "/empty", dict),
    ("GET", "/q?x=1&y=%20z", lambda: {"params": {"p": "a b"}}),
    ("GET", "/get", lambda: {"headers": {"Accept": "text/plain"}}),
    ("PUT", "/stream", lambda: {"content": stream_body()}),  # chunked
    ("DELETE", "/del", dict),
]


@pytest.mark.parametrize(("method", "url", "kwargs"), CASES, ids=[c[1] for c in CASES])
async def test_sends_what_httpx_sends(
    wire: Wire, method: str, url: str, kwargs: Callable[[], dict[str, Any]]
) -> None:
    native, over_aiohttp = client_pair(wire.base_url, headers={"X-Client": "1"})
    for client in (native, over_aiohttp):
        response = await client.request(method, url, **kwargs())
        assert response.status_code == 200
        await client.aclose()
    sent_by_httpx, sent_by_aiohttp = wire.requests
    if method == "DELETE":  # aiohttp's one addition: an empty body's length
        assert sent_by_aiohttp[1].pop() == ("Content-Length", "0")
    assert sent_by_aiohttp == sent_by_httpx


async def test_receives_what_httpx_receives(wire: Wire) -> None:
    native, over_aiohttp = client_pair(wire.base_url)
    got: list[list[Any]] = []
    for client in (native, over_aiohttp):
        seen = []
        for path in ("/ok", "/gzip", "/redirect", "/cookie"):
            response = await client.get(path)
            assert isinstance(response.elapsed, datetime.timedelta)
            seen.append(
                (
                    response.status_code,
                    response.headers.raw,
                    response.content,
                    response.text,
                    response.http_version,
                    response.reason_phrase,
                    response.is_closed,
                    response.is_stream_consumed,
                    response.num_bytes_downloaded,
                    response.request is not None,
                    str(response.next_request.url) if response.next_request else None,
                    response.encoding,
                )
            )
        seen.append(dict(client.cookies))  # the Set-Cookie kept
        seen.append((await client.get("/ok")).json())
        got.append(seen)
        await client.aclose()
    assert got[1] == got[0]
    assert got[0][-2] == {"session": "s1"}
    assert wire.requests[-1][1] == wire.requests[-6][1]  # the cookie sent back, both ways


async def test_streams_what_httpx_streams(wire: Wire) -> None:
    for client in client_pair(wire.base_url):
        request = client.build_request("GET", "/endless")
        response = await client.send(request, stream=True)
        assert not response.is_closed
        parts = []
        async for part in response.aiter_raw():
            parts.append(part)
            if len(b"".join(parts)) >= 6:
                break
        await response.aclose()
        assert b"".join(parts).startswith(b"onetwo")
        assert isinstance(response.elapsed, datetime.timedelta)
        await client.aclose()


# -- when httpx's own send runs --------------------------------------------------------------


@pytest.fixture
def httpx_sends(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The requests httpx's own AsyncClient.send handled."""
    sent: list[httpx.Request] = []
    real = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
        sent.append(request)
        return await real(self, request, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", send)
    return sent


async def test_the_direct_path(wire: Wire, httpx_sends: list[httpx.Request]) -> None:
    _, client = client_pair(wire.base_url)
    assert isinstance(client, AiohttpClient)
    assert (await client.post("/ok", json={})).status_code == 200
    assert (await client.get("/redirect")).status_code == 302  # not followed
    assert httpx_sends == []
    await client.aclose()


async def test_httpx_send_runs_for_auth(wire: Wire, httpx_sends: list[httpx.Request]) -> None:
    _, client = client_pair(wire.base_url, auth=("user", "pass"))
    await client.get("/ok")
    _, with_url_credentials = client_pair(wire.base_url.replace("//", "//u:p@"))
    await with_url_credentials.get("/ok")
    _, per_request = client_pair(wire.base_url)
    await per_request.get("/ok", auth=("a", "b"))
    assert len(httpx_sends) == 3
    sent = [{k.lower(): v for k, v in request[1]} for request in wire.requests]
    assert sent[0]["authorization"] == "Basic dXNlcjpwYXNz"
    assert sent[1]["authorization"] == "Basic dTpw"
    assert sent[2]["authorization"] == "Basic YTpi"
    for each in (client, with_url_credentials, per_request):
        await each.aclose()


async def test_httpx_send_runs_for_hooks_and_redirects(
    wire: Wire, httpx_sends: list[httpx.Request]
) -> None:
    seen: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async def on_response(response: httpx.Response) -> None:
        seen.append(str(response.status_code))

    _, hooked = client_pair(
        wire.base_url, event_hooks={"request": [on_request], "response": [on_response]}
    )
    await hooked.get("/ok")
    assert seen == ["/ok", "200"]
    _, following = client_pair(wire.base_url, follow_redirects=True)
    response = await following.get("/redirect")
    assert (response.status_code, response.url.path, len(response.history)) == (200, "/ok", 1)
    _, plain = client_pair(wire.base_url)
    assert (await plain.get("/redirect", follow_redirects=True)).url.path == "/ok"
    assert len(httpx_sends) == 3
    for each in (hooked, following, plain):
        await each.aclose()


async def test_a_closed_client_refuses_as_httpx_does(wire: Wire) -> None:
    _, client = client_pair(wire.base_url)
    await client.get("/ok")
    await client.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await client.get("/ok")


# -- failures: the httpx exception httpx's transport raises ------------------------------------


async def failure(client: httpx.AsyncClient, call: Callable[[], Awaitable[Any]]) -> type:
    try:
        await call()
    except httpx.TransportError as exc:
        assert exc.request is not None
        return type(exc)
    finally:
        await client.aclose()
    raise AssertionError("no failure")  # pragma: no cover


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/close", httpx.RemoteProtocolError),
        ("/short", httpx.RemoteProtocolError),
        ("/hang", httpx.ReadTimeout),
        ("/stall", httpx.ReadTimeout),
    ],
)
async def test_failures_raise_what_httpx_raises(wire: Wire, path: str, expected: type) -> None:
    for client in client_pair(wire.base_url, timeout=httpx.Timeout(5, read=0.3)):
        assert await failure(client, lambda c=client: c.get(path)) is expected  # type: ignore[misc]


async def test_a_stream_cut_short_raises_what_httpx_raises(wire: Wire) -> None:
    for client in client_pair(wire.base_url):

        async def read(c: httpx.AsyncClient = client) -> None:
            async with c.stream("GET", "/cut") as response:
                async for _ in response.aiter_bytes():
                    pass

        assert await failure(client, read) is httpx.RemoteProtocolError


async def test_refused_and_untrusted_are_connect_errors(wire: Wire) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
    await listener.aclose()  # nobody listens there now
    for client in client_pair(f"http://127.0.0.1:{port}"):
        assert await failure(client, lambda c=client: c.get("/")) is httpx.ConnectError  # type: ignore[misc]
    with LoopbackServer(asgi_ok, tls=True) as untrusted:  # a test CA nobody trusts
        for client in client_pair(untrusted.base_url):
            assert await failure(client, lambda c=client: c.get("/")) is httpx.ConnectError  # type: ignore[misc]
        for client in client_pair(untrusted.base_url, verify=False):
            assert (await client.get("/")).status_code == 200
            await client.aclose()
        assert untrusted.ca_file is not None
        trusted = ssl.create_default_context(cafile=untrusted.ca_file)
        for client in client_pair(untrusted.base_url, verify=trusted):
            assert (await client.get("/")).status_code == 200
            await client.aclose()


async def asgi_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_pool_timeout(wire: Wire) -> None:
    timeout = httpx.Timeout(5, pool=0.2)
    limits = httpx.Limits(max_connections=1)
    for client in client_pair(wire.base_url, timeout=timeout, limits=limits):
        async with anyio.create_task_group() as group:
            group.start_soon(client.get, "/hang")  # holds the one connection
            await anyio.sleep(0.1)
            with pytest.raises(httpx.PoolTimeout):
                await client.get("/ok")
            group.cancel_scope.cancel()
        await client.aclose()


async def test_headers_httpx_would_refuse(wire: Wire) -> None:
    bad = {"X-Bad": "a\r\nX-Injected: 1"}
    for client in client_pair(wire.base_url):
        assert await failure(client, lambda c=client: c.get("/ok", headers=bad)) is (  # type: ignore[misc]
            httpx.LocalProtocolError
        )
    _, client = client_pair(wire.base_url)
    with pytest.raises(httpx.LocalProtocolError, match="UTF-8"):
        await client.get("/ok", headers={"X-Latin": b"\xe9"})
    await client.aclose()
    assert wire.requests == []


def info() -> aiohttp.RequestInfo:
    url = yarl.URL("http://h.test/")
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)


def key() -> Any:
    return aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (lambda: aiohttp.ClientProxyConnectionError(key(), OSError("x")), httpx.ProxyError),
        (lambda: aiohttp.ClientConnectorError(key(), OSError("x")), httpx.ConnectError),
        (
            lambda: aiohttp.ClientConnectorCertificateError(key(), ssl.SSLCertVerificationError()),
            httpx.ConnectError,
        ),
        (lambda: aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (lambda: aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (lambda: aiohttp.ServerTimeoutError("t"), httpx.ReadTimeout),
        (lambda: aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (lambda: aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (lambda: aiohttp.InvalidURL("x"), httpx.UnsupportedProtocol),
        (lambda: aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (lambda: ConnectionResetError(104, "reset"), httpx.ReadError),
        (lambda: TimeoutError(), httpx.ReadTimeout),
        (lambda: aiohttp.ClientConnectionError("closed"), httpx.ReadError),
        (lambda: aiohttp.ClientResponseError(info(), (), message="bad"), httpx.RemoteProtocolError),
        (lambda: aiohttp.ClientError(), httpx.ReadError),
        (lambda: ValueError("newline in header"), httpx.LocalProtocolError),
        (lambda: KeyError("a bug"), None),
    ],
)
def test_error_map(anyio_backend: str, exc: Callable[[], BaseException], expected: Any) -> None:
    request = httpx.Request("GET", "http://h.test/")
    got = mapped(exc(), request)
    assert (type(got) if got is not None else None) is expected
    if got is not None:
        assert got.request is request and str(got)


# -- cancellation and early close leave the pool usable ---------------------------------------


async def test_cancelled_mid_body_releases_the_connection(wire: Wire) -> None:
    import asyncio

    _, client = client_pair(wire.base_url, limits=httpx.Limits(max_connections=1))
    for _ in range(3):
        with anyio.move_on_after(0.1):
            await client.get("/stall")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("/stall"), 0.1)  # noqa: TID251 - under test
        task = asyncio.ensure_future(client.get("/hang"))
        await anyio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_idle(client)
    with anyio.fail_after(10):
        assert (await client.get("/ok")).status_code == 200
    await client.aclose()


async def test_a_stream_closed_early_releases_its_connection(wire: Wire) -> None:
    _, client = client_pair(wire.base_url, limits=httpx.Limits(max_connections=1))
    for _ in range(3):
        async with client.stream("GET", "/endless") as response:
            async for _ in response.aiter_bytes():
                break  # the rest is never read
    assert_idle(client)
    session = transport_of(client).session
    assert session is not None
    assert not any(session.connector._conns.values())  # type: ignore[union-attr]  # closed, not pooled
    with anyio.fail_after(10):
        assert (await client.get("/ok")).status_code == 200
    await client.aclose()


# -- the rest of what the transport promises --------------------------------------------------


def test_edge_requests_build_as_httpx_builds(anyio_backend: str) -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    native = httpx.AsyncClient(transport=mock)
    fast = httpx.AsyncClient(transport=mock)
    install(fast)
    given_length = {"headers": {"Content-Length": "4"}, "content": stream_body()}
    expected = native.build_request("POST", "http://h.test/", **given_length)
    built = fast.build_request("POST", "http://h.test/", **given_length)
    assert built.headers.raw == expected.headers.raw  # no Transfer-Encoding next to it
    with pytest.raises(TypeError, match="Header value must be str or bytes"):
        native.build_request("GET", "http://h.test/", headers={"X-N": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="Header value must be str or bytes"):
        fast.build_request("GET", "http://h.test/", headers={"X-N": 1})  # type: ignore[dict-item]


class Unexpected(Exception):
    """Not a transport failure: passed through as it is."""


class StubContent:
    async def readany(self) -> bytes:
        raise Unexpected


class StubResponse:
    status = 200
    raw_headers = ((b"Content-Length", b"2"),)
    headers = CIMultiDictProxy(CIMultiDict({"Content-Length": "2"}))
    version = aiohttp.HttpVersion11
    reason = "OK"
    content = StubContent()
    closed = False

    async def read(self) -> bytes:
        raise Unexpected

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        pass


class StubSession:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.response = StubResponse()

    async def _request(self, *args: Any, **kwargs: Any) -> StubResponse:
        if self.fail:
            raise Unexpected
        return self.response


async def test_other_exceptions_pass_through() -> None:
    transport = AiohttpTransport(None, max_connections=1, keepalive_expiry=None)
    transport._open()
    real = transport.session
    assert real is not None
    request = httpx.Request("GET", "http://h.test/")
    try:
        transport.session = StubSession(fail=True)  # type: ignore[assignment]
        with pytest.raises(Unexpected):
            await transport.send(request, stream=False)
        stub = StubSession(fail=False)
        transport.session = stub  # type: ignore[assignment]
        with pytest.raises(Unexpected):
            await transport.send(request, stream=False)
        assert stub.response.closed  # an unread response does not go back to the pool
        response = await transport.send(request, stream=True)
        with pytest.raises(Unexpected):
            await response.aread()
    finally:
        transport.session = real
        await transport.aclose()


async def test_caches_stay_bounded(wire: Wire) -> None:
    transport = AiohttpTransport(None, max_connections=None, keepalive_expiry=None)
    try:
        for i in range(70):
            timeout = httpx.Timeout(5, read=1 + i)
            request = httpx.Request(
                "GET", f"{wire.base_url}/ok?{i}", extensions={"timeout": timeout.as_dict()}
            )
            assert (await transport.send(request, stream=False)).status_code == 200
        assert len(transport._timeouts) <= 65
        for i in range(_aiohttp._URLS_MAX + 5):
            transport._url(httpx.URL(f"http://h.test/{i}"))
        assert len(transport._urls) <= _aiohttp._URLS_MAX
    finally:
        await transport.aclose()


async def test_a_redirected_body_not_read_yet_is_sent(wire: Wire) -> None:
    transport = AiohttpTransport(None, max_connections=None, keepalive_expiry=None)
    request = httpx.Request("POST", f"{wire.base_url}/ok", stream=httpx.ByteStream(b"body"))
    request.headers["Content-Length"] = "4"
    assert (await transport.send(request, stream=False)).status_code == 200
    assert wire.requests[-1][2] == b"body"
    await transport.aclose()
