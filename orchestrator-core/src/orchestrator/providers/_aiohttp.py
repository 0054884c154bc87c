"""The aiohttp transport of provider clients (``http_transport = "aiohttp"``, asyncio only).

Two layers, both giving providers the real ``httpx`` objects they expect:

* :class:`AiohttpTransport`, an ``httpx.AsyncBaseTransport`` over one
  ``aiohttp.ClientSession`` per client (so one per event loop; created by the first
  request, closed with the client). It sends the request's method, URL (as httpx encoded
  it; credentials in it are httpx's Authorization header, never sent in the URL), headers
  and body as they are: aiohttp adds no header of its own (``Accept``, ``User-Agent``, a
  ``Content-Type``) except ``Content-Length: 0`` on a DELETE (or custom method) without a body;
  a streamed body goes chunked, as with httpx. It follows no redirect and decompresses
  nothing (httpx decodes the body, as over its own transport). The TLS context is the one
  httpx built from the client's ``verify``/``cert`` (CA bundle, client certificate,
  ``verify=False``). The request's httpx timeouts become aiohttp's: ``connect`` for the TCP
  connect and TLS handshake, ``read`` for each socket read, ``pool`` for getting a
  connection (aiohttp counts a new connection's connect within it too; there is no write
  timeout). The pool has the client's connection limit and keep-alive expiry
  (``max_keepalive_connections`` and httpx's connect ``retries`` have no aiohttp
  counterpart). Failures raise the httpx exception httpx's own transport raises for them,
  with the request attached and aiohttp's exception as the cause (:func:`mapped`).

* :class:`AiohttpClient`, which ``use_aiohttp`` makes a plain ``httpx.AsyncClient`` on that
  transport (its class is swapped, so it stays an ``httpx.AsyncClient``; a subclass of it
  keeps its class and gets the transport alone). Its ``build_request`` builds what httpx's
  does (the same URL, headers, body, extensions and attributes: a hypothesis test holds
  them equal, and a check on first use keeps httpx's path on an httpx that differs) with
  the merged URL cached per URL string and the headers merged in one pass, a tenth of
  httpx's cost; it leaves query ``params``, ``files``, per-request ``cookies``/``timeout``/
  ``extensions`` and clients with default params or cookies to httpx. Its ``send`` goes
  straight to the transport unless httpx's machinery would do something: auth (the
  client's, the request's, credentials in the URL), event hooks, redirects followed, a
  mounted transport (a proxy), a streamed request body, a closed client; those take
  httpx's ``send`` over the same transport. What that ``send`` does to every response is
  kept: cookies set by the server are stored, a redirect gets ``next_request``, the httpx
  log line is written, ``elapsed`` is set. A response that is not streamed is read whole
  inside aiohttp and handed over with its content (decoded by httpx when it has a
  Content-Encoding); a streamed one iterates aiohttp's body as it arrives.

A cancellation anywhere (anyio scopes, ``asyncio.wait_for``/``timeout``, ``Task.cancel``)
closes the connection of the interrupted request, and closing a streamed response early
closes its connection (it is not reused with unread data), so the pool stays usable.
"""

from __future__ import annotations

import datetime
import json as json_module
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from httpx._client import ClientState, UseClientDefault
from httpx._content import encode_request

if TYPE_CHECKING:
    import ssl

    import aiohttp

__all__ = ["AiohttpClient", "AiohttpTransport", "mapped"]

_logger = logging.getLogger("httpx")  # httpx's request log line, kept on the fast path
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
#: Headers aiohttp adds when the request lacks them; httpx would send none of these.
_AUTO = (b"accept", b"accept-encoding", b"user-agent")
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
#: Cached merged URLs per client (the URL strings a provider uses are few).
_URLS_MAX = 256
_POOL_WAIT = "_wait_for_available_connection"  # aiohttp's connector, waiting for a slot
# yarl.URL and multidict.CIMultiDict (aiohttp's), imported with the first session.
_URL: Any = None
_CIMultiDict: Any = None


def _waited_for_pool(exc: BaseException) -> bool:
    """Whether aiohttp's connect deadline fired while the request waited for a free
    connection (httpx's pool timeout) rather than while connecting."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == _POOL_WAIT:
                return True
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return False


def mapped(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx exception httpx's own transport raises for the failure aiohttp reported
    as ``exc`` (None: not a transport failure; let it propagate). Raise it ``from exc``:
    the cause keeps the details (a certificate verify failure is recognised through it)."""
    import aiohttp

    error: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        error = httpx.ProxyError
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS, certificate
        error = httpx.ConnectError
    elif isinstance(exc, aiohttp.SocketTimeoutError):
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.PoolTimeout if _waited_for_pool(exc) else httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        # httpx: "Server disconnected without sending a response", "peer closed connection
        # without sending complete message body"
        error = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
        error = httpx.UnsupportedProtocol
    elif isinstance(exc, TimeoutError):  # one of aiohttp's own timeouts, not wrapped
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectionError | OSError):  # a reset, a broken pipe
        error = httpx.ReadError
    elif isinstance(exc, aiohttp.ClientResponseError):  # a malformed response
        error = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientError):
        error = httpx.ReadError
    elif isinstance(exc, ValueError):  # aiohttp refused a header (a newline in a value)
        error = httpx.LocalProtocolError
    else:
        return None
    return error(str(exc) or type(exc).__name__, request=request)


_EMPTY = (b"Content-Length", b"content-length", b"0")


def _header_key(key: str | bytes) -> bytes:
    """httpx's ``_normalize_header_key`` (no encoding given)."""
    return key if isinstance(key, bytes) else key.encode("ascii")


def _header_value(value: str | bytes) -> bytes:
    """httpx's ``_normalize_header_value`` (no encoding given)."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise TypeError(f"Header value must be str or bytes, not {type(value)}")
    return value.encode("ascii")


def _headers(items: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    """``httpx.Headers`` of ``items`` (raw name, lower-case name, value), as httpx keeps
    them, without normalising them again."""
    headers = httpx.Headers.__new__(httpx.Headers)
    headers._list = items
    headers._encoding = None
    return headers


class _ResponseStream(httpx.AsyncByteStream):
    """A streamed response body: aiohttp's, chunk by chunk as it arrives. Closing it sets
    the response's ``elapsed`` and releases the connection (closes it when unread)."""

    __slots__ = ("_request", "_response", "_start", "_wrapped")

    def __init__(self, wrapped: aiohttp.ClientResponse, request: httpx.Request, start: float):
        self._wrapped = wrapped
        self._request = request
        self._start = start
        self._response: httpx.Response | None = None

    def __aiter__(self) -> _ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._wrapped.content.readany()
        except Exception as exc:
            error = mapped(exc, self._request)
            if error is None:
                raise
            raise error from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.elapsed = datetime.timedelta(seconds=time.perf_counter() - self._start)
        self._wrapped.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session (see the module docstring)."""

    __slots__ = (
        "_extensions",
        "_limit",
        "_ssl",
        "_timeouts",
        "_urls",
        "keepalive_expiry",
        "session",
    )

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        *,
        max_connections: int | None,
        keepalive_expiry: float | None,
    ) -> None:
        self._ssl = ssl_context
        self._limit = max_connections
        self.keepalive_expiry = keepalive_expiry
        #: The aiohttp session, created on the first request (on the loop that uses it).
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}
        self._extensions: dict[tuple[Any, str | None], dict[str, Any]] = {}
        self._urls: dict[int, tuple[httpx.URL, Any]] = {}

    def _open(self) -> aiohttp.ClientSession:
        global _URL, _CIMultiDict
        import aiohttp
        import multidict
        import yarl

        _URL, _CIMultiDict = yarl.URL, multidict.CIMultiDict

        connector = aiohttp.TCPConnector(
            ssl=self._ssl if self._ssl is not None else True,
            limit=self._limit or 0,  # httpx's None (no limit) is aiohttp's 0
            keepalive_timeout=self.keepalive_expiry,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # the httpx client keeps the cookies
            auto_decompress=False,  # httpx decodes the body
            trust_env=False,  # proxies from the environment are httpx mounts
            max_line_size=16384,  # h11's limit for a response head, as httpx's transport
            max_field_size=16384,
        )
        return self.session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        timeout = request.extensions.get("timeout") or {}
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            import aiohttp

            if len(self._timeouts) > 64:
                self._timeouts.clear()
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return found

    def _url(self, url: httpx.URL) -> Any:
        """The yarl URL aiohttp sends, exactly as httpx encoded ``url`` (the fast client
        reuses its URL objects: one conversion per URL string)."""
        found = self._urls.get(id(url))
        if found is None or found[0] is not url:
            if len(self._urls) >= _URLS_MAX:
                self._urls.clear()
            converted = _URL(str(url), encoded=True)
            if converted.raw_user is not None or converted.raw_password is not None:
                # httpx sends credentials in the URL as an Authorization header (its
                # BasicAuth), never in the request target; aiohttp would add its own
                converted = converted.with_user(None)
            found = self._urls[id(url)] = (url, converted)
        return found[1]

    def _response_extensions(self, wrapped: aiohttp.ClientResponse) -> dict[str, Any]:
        key = (wrapped.version, wrapped.reason)
        found = self._extensions.get(key)
        if found is None:
            version = wrapped.version
            found = {
                "http_version": b"HTTP/%d.%d" % (version.major, version.minor)
                if version is not None
                else b"HTTP/1.1"
            }
            if wrapped.reason:
                found["reason_phrase"] = wrapped.reason.encode("ascii", "replace")
            if len(self._extensions) > 64:
                self._extensions.clear()
            self._extensions[key] = found
        return found  # httpx.Response copies it

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.send(request, stream=True)

    async def send(
        self, request: httpx.Request, *, stream: bool, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """Send ``request``; the response is read whole unless ``stream``. With ``client``,
        also what httpx's client does with each response: keep its cookies, and set
        ``next_request`` of a redirect (which is not followed)."""
        start = time.perf_counter()
        session = self.session or self._open()
        body: Any
        try:
            body = request.content or None  # an empty body: no payload (no Content-Type)
        except httpx.RequestNotRead:
            if isinstance(request.stream, httpx.ByteStream):  # e.g. a redirect's
                body = request.read() or None
            else:
                body = request.stream  # streamed: aiohttp sends it chunked
        items = request.headers._list  # (raw name, lower-case name, value)
        names = {item[1] for item in items}
        try:
            if body is not None and b"transfer-encoding" in names and body is request.stream:
                # aiohttp writes its own for a streamed body
                pairs = [(k.decode(), v.decode()) for k, n, v in items if n != b"transfer-encoding"]
            else:
                pairs = [(k.decode(), v.decode()) for k, _, v in items]
        except UnicodeDecodeError as exc:
            raise httpx.LocalProtocolError(
                f"aiohttp sends header values as UTF-8; this one is not ({exc})",
                request=request,
            ) from exc
        skip = None
        # aiohttp gives a body, and any POST, PUT or PATCH, a Content-Type of its own
        typeless = b"content-type" not in names and (
            body is not None or request.method in _BODY_METHODS
        )
        if typeless or not names.issuperset(_AUTO):
            skip = [name.decode() for name in _AUTO if name not in names]
            if typeless:
                skip.append("content-type")
        try:
            wrapped = await session._request(
                request.method,
                self._url(request.url),
                data=body,
                headers=_CIMultiDict(pairs),
                skip_auto_headers=skip,
                allow_redirects=False,
                timeout=self._timeout(request),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except Exception as exc:
            error = mapped(exc, request)
            if error is None:
                raise
            raise error from exc
        status = wrapped.status
        try:
            if stream:
                body_stream = _ResponseStream(wrapped, request, start)
                response = httpx.Response(
                    status,
                    headers=_headers([(k, k.lower(), v) for k, v in wrapped.raw_headers]),
                    stream=body_stream,
                    request=request,
                    extensions=self._response_extensions(wrapped),
                )
                body_stream._response = response
            else:
                try:
                    content = await wrapped.read()
                except Exception as exc:
                    error = mapped(exc, request)
                    if error is None:
                        raise
                    raise error from exc
                wrapped.release()
                response = httpx.Response(
                    status,
                    headers=_headers([(k, k.lower(), v) for k, v in wrapped.raw_headers]),
                    stream=httpx.ByteStream(content),
                    request=request,
                    extensions=self._response_extensions(wrapped),
                )
        except BaseException:
            wrapped.close()  # unread, or interrupted: the connection cannot be reused
            raise
        received = wrapped.headers
        if client is not None:
            if "Set-Cookie" in received:
                client.cookies.extract_cookies(response)
            if status in _REDIRECTS and "Location" in received:
                response.next_request = client._build_redirect_request(request, response)
        if stream:
            return response
        if "Content-Encoding" in received:
            await response.aread()  # httpx decodes (gzip, deflate, ...)
        else:  # what aread() leaves, without its layers of iterators
            response._content = content
            response.is_stream_consumed = True
            response.is_closed = True
            response._num_bytes_downloaded = len(content)
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        return response

    async def aclose(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()


class AiohttpClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose requests go straight to its aiohttp transport when
    httpx's machinery around them would do nothing (see the module docstring). Made by
    swapping the class of a plain ``httpx.AsyncClient``; never constructed directly."""

    _aiohttp_urls: dict[str, tuple[httpx.URL, httpx.URL, tuple[bytes, bytes, bytes] | None]]

    def build_request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        extensions: Any = None,
    ) -> httpx.Request:
        if (
            type(url) is not str
            or files is not None
            or params is not None
            or cookies is not None
            or extensions is not None
            or not isinstance(timeout, UseClientDefault)
            or (data is not None and not isinstance(data, Mapping))
            or (headers is not None and not isinstance(headers, Mapping))
            or self.params
            or self._cookies.jar._cookies  # type: ignore[attr-defined]  # bool(self.cookies)
        ):
            return super().build_request(
                method,
                url,
                content=content,
                data=data,
                files=files,
                json=json,
                params=params,
                headers=headers,
                cookies=cookies,
                timeout=timeout,
                extensions=extensions,
            )
        # The URL: httpx's merge with base_url, and its Host header, once per URL string.
        base = self._base_url
        cached = self._aiohttp_urls.get(url)
        if cached is None or cached[0] is not base:
            if len(self._aiohttp_urls) >= _URLS_MAX:
                self._aiohttp_urls.clear()
            merged = self._merge_url(url)
            host = (b"Host", b"host", merged.netloc) if merged.host else None
            cached = self._aiohttp_urls[url] = (base, merged, host)
        # The headers: the client's, minus every name the request sets, plus the request's
        # (Headers.update); then the body's, where unset (setdefault); Host and an empty
        # body's Content-Length first (Request._prepare).
        items = self._headers._list
        if headers:
            extra = [(_header_key(k), _header_value(v)) for k, v in headers.items()]
            names = {k.lower() for k, _ in extra}
            items = [item for item in items if item[1] not in names]
            items += [(k, k.lower(), v) for k, v in extra]
        else:
            items = list(items)
        if json is not None and content is None and not data and _json_holds:
            # encode_json's bytes and headers, with one encoder instead of one per call
            body = _JSON.encode(json).encode("utf-8")
            stream: Any = httpx.ByteStream(body)
            body_headers = {"Content-Length": str(len(body)), "Content-Type": "application/json"}
        else:
            body_headers, stream = encode_request(content=content, data=data, json=json)
        present = {item[1] for item in items}
        for key, value in body_headers.items():
            raw = key.encode("ascii")
            lower = raw.lower()
            if lower in present or (lower == b"transfer-encoding" and b"content-length" in present):
                continue
            present.add(lower)
            items.append((raw, lower, value.encode("ascii")))
        method = method.upper()
        if b"host" not in present and cached[2] is not None:
            items.insert(0, cached[2])
        if (
            b"content-length" not in present
            and b"transfer-encoding" not in present
            and method in ("POST", "PUT", "PATCH")
        ):
            items.insert(1 if b"host" not in present and cached[2] is not None else 0, _EMPTY)
        request = httpx.Request.__new__(httpx.Request)
        request.method = method
        request.url = cached[1]
        request.headers = _headers(items)
        request.extensions = {"timeout": self.timeout.as_dict()}
        request.stream = stream
        if isinstance(stream, httpx.ByteStream):
            request._content = b"".join(stream)
        return request

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        transport = self._transport
        inner = getattr(transport, "inner", transport)  # under the ProviderTransport
        if (
            type(inner) is not AiohttpTransport
            or self._mounts
            or not isinstance(auth, UseClientDefault)
            or self._auth is not None
            or (
                follow_redirects
                if not isinstance(follow_redirects, UseClientDefault)
                else self.follow_redirects
            )
            or self._event_hooks["request"]
            or self._event_hooks["response"]
            or self._state is ClientState.CLOSED
            or "_content" not in request.__dict__  # a streamed request body
            or request.url.userinfo  # credentials in the URL: httpx's BasicAuth
        ):
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        self._state = ClientState.OPENED
        self._set_timeout(request)
        response = await inner.send(request, stream=stream, client=self)
        response.default_encoding = self._default_encoding
        if _logger.isEnabledFor(logging.INFO):
            _logger.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response


def _same(a: httpx.Request, b: httpx.Request) -> bool:
    return (
        a.method == b.method
        and a.url == b.url
        and a.headers.raw == b.headers.raw
        and a.content == b.content
        and a.extensions == b.extensions
        and type(a.stream) is type(b.stream)
        and set(vars(a)) == set(vars(b))
    )


_fast_ok: bool | None = None
#: httpx's JSON encoding of request bodies (httpx._content.encode_json), as one encoder.
_JSON = json_module.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_json_holds = False  # set by fast_path_holds: this httpx encodes as _JSON does
#: What AiohttpClient reads or calls of httpx's client besides its public API.
_CLIENT_INTERNALS = (
    "_auth",
    "_base_url",
    "_build_redirect_request",
    "_cookies",
    "_default_encoding",
    "_event_hooks",
    "_headers",
    "_merge_url",
    "_mounts",
    "_set_timeout",
    "_state",
    "_transport",
)


def _encodes_as_httpx() -> bool:
    from httpx._content import encode_json

    for sample in ({"m": [1, 2.5, "ы", None, True]}, ["\u2028", {"a": {}}]):
        if b"".join(encode_json(sample)[1]) != _JSON.encode(sample).encode("utf-8"):
            return False  # pragma: no cover - another httpx
    try:
        encode_json(float("nan"))
    except ValueError:
        return True
    return False  # pragma: no cover - another httpx


def fast_path_holds() -> bool:
    """Whether :class:`AiohttpClient` builds what this httpx builds (checked once, on a
    sample): another httpx version with other internals keeps httpx's own path."""
    global _fast_ok, _json_holds
    if _fast_ok is None:
        try:
            _json_holds = _encodes_as_httpx()
            client = httpx.AsyncClient(
                base_url="https://example.test/v1",
                headers={"X-A": "1"},
                transport=httpx.MockTransport(lambda request: httpx.Response(200)),
                trust_env=False,
            )
            fast = AiohttpClient.__new__(AiohttpClient)
            fast.__dict__.update(client.__dict__)
            fast._aiohttp_urls = {}
            samples: list[tuple[str, str, dict[str, Any]]] = [
                ("POST", "/chat", {"json": {"m": [1, "ы"]}, "headers": {"x-a": "2", "B": "3"}}),
                ("PUT", "https://other.test/x?q=1", {"content": b"abc"}),
                ("POST", "/form", {"data": {"a": "b"}}),
                ("POST", "/empty", {}),
                ("get", "/models", {"headers": {"Host": "h.test"}}),
            ]
            _fast_ok = all(hasattr(client, name) for name in _CLIENT_INTERNALS) and all(
                _same(
                    AiohttpClient.build_request(fast, method, url, **kwargs),
                    httpx.AsyncClient.build_request(client, method, url, **kwargs),
                )
                for method, url, kwargs in samples
            )
        except Exception:  # pragma: no cover - another httpx
            _fast_ok = False
    return _fast_ok


def install(client: httpx.AsyncClient) -> None:
    """Make a plain ``httpx.AsyncClient`` an :class:`AiohttpClient` (a subclass of
    httpx's client with its own ``build_request``/``send`` stays as it is)."""
    if type(client) is httpx.AsyncClient and fast_path_holds():
        client.__class__ = AiohttpClient
        assert isinstance(client, AiohttpClient)
        client._aiohttp_urls = {}
