"""The error boundary: how the outside world (HTTP statuses, headers, bodies, ``httpx``
exceptions) becomes the typed errors of :mod:`orchestrator.errors`. One place, shared by
every vendor package and the plugin template; a vendor adds only its body shapes and hints.

Statuses -> errors (:data:`STATUS_ERRORS`, :func:`error_for_status`)::

    400, 422       InvalidRequestError       not transient
    404            ModelNotFoundError        not transient
    413            ContextLengthError        not transient
    401            AuthenticationError       not transient
    403            PermissionDeniedError     not transient
    402            QuotaExceededError        not transient
    408            ProviderTimeoutError      transient (the server gave up waiting; repeatable)
    429            RateLimitError            transient, ``retry_after`` from the headers
    5xx            ServiceUnavailableError   transient
    anything else  ProviderError             not transient

``Retry-After`` (:func:`retry_after_from`): ``retry-after-ms`` (milliseconds, as OpenAI and
Anthropic send it), then ``Retry-After`` as seconds (fractions allowed) or an HTTP date (one
without a time zone is UTC; a past date is 0). Anything else is ignored (None).

``httpx`` exceptions -> errors (:data:`TRANSPORT_ERRORS`, :func:`map_transport_error`, the
context manager :func:`mapped_transport_errors`); the most specific entry wins::

    TimeoutException (Connect/Read/Write/PoolTimeout)  ProviderTimeoutError    transient
    NetworkError (ConnectError, ReadError, ...)        TransportError          transient
    RemoteProtocolError, ProxyError, RequestError      TransportError          transient
    DecodingError (a broken gzip body)                 TransportError          transient
    LocalProtocolError (we built invalid HTTP)         TransportError          not transient
    UnsupportedProtocol, InvalidURL, TooManyRedirects  TransportConfigurationError
    a TLS certificate verify failure                   TransportConfigurationError (CA hint)
    HTTPStatusError (``raise_for_status()``)           the status table above

The stream-state and cookie exceptions (``StreamConsumed``, ``StreamClosed``,
``ResponseNotRead``, ``RequestNotRead``, ``CookieConflict``) are a provider's own bugs and
are left to propagate (:data:`UNMAPPED`).

Bodies in messages are redacted *before* they are cut to :data:`EXCERPT_LIMIT` characters
(:func:`body_excerpt`), so a cut never leaves the start of a credential readable.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import ssl
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from orchestrator._secrets import redact
from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    TransportConfigurationError,
    TransportError,
)

__all__ = [
    "DEFAULT_HINTS",
    "DEFAULT_TLS_HINT",
    "EXCERPT_LIMIT",
    "STATUS_ERRORS",
    "TRANSPORT_ERRORS",
    "UNMAPPED",
    "TransportRule",
    "body_excerpt",
    "error_class_for_status",
    "error_for_status",
    "is_transient_status",
    "json_loads",
    "map_transport_error",
    "mapped_transport_errors",
    "retry_after_from",
    "token_count",
]

# -- statuses -----------------------------------------------------------------------------

#: HTTP status -> the error class it maps to. Statuses >= 500 not listed here map to
#: :class:`ServiceUnavailableError`, any other unlisted one to :class:`ProviderError`.
STATUS_ERRORS: Mapping[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: QuotaExceededError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,
    408: ProviderTimeoutError,
    413: ContextLengthError,
    422: InvalidRequestError,
    429: RateLimitError,
}

#: The default fix-it hint of each error class (a vendor passes its own through ``hints``).
DEFAULT_HINTS: Mapping[type[ProviderError], str] = {
    InvalidRequestError: "the request is invalid; check the messages and parameters",
    ModelNotFoundError: "no such model or endpoint; check the provider's model and base_url",
    ContextLengthError: "the request is over the model's context window; shorten it",
    AuthenticationError: "check the provider's credentials (api_key or token)",
    PermissionDeniedError: "the credentials lack access to this model or resource; "
    "check the key's roles or scope",
    QuotaExceededError: "the account's balance or token package is exhausted; top it up",
    ProviderTimeoutError: "the server gave up waiting for the request; retry later and "
    "check the network",
    RateLimitError: "too many requests; lower the concurrency or raise the account's limits",
    ServiceUnavailableError: "the provider failed on its side; retry later",
    ProviderError: "unexpected status; check base_url",
}

#: Longest body excerpt (characters, after redaction) that goes into an error message.
EXCERPT_LIMIT = 200


def error_class_for_status(status: int) -> type[ProviderError]:
    """The error class :data:`STATUS_ERRORS` gives ``status``."""
    cls = STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    return ServiceUnavailableError if status >= 500 else ProviderError


def is_transient_status(status: int) -> bool:
    """Whether an answer with ``status`` is worth retrying on the same provider (408, 429,
    5xx): what ``error_for_status(status, ...).transient`` is by default."""
    return error_class_for_status(status).default_transient or status >= 500


def body_excerpt(body: str | bytes | None, limit: int = EXCERPT_LIMIT) -> str:
    """``body`` fit for an error message: secrets redacted first, then whitespace folded,
    then cut to ``limit`` characters (``…`` marks a cut)."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str | None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    error_class: type[ProviderError] | None = None,
    hint: str | None = None,
    hints: Mapping[type[ProviderError], str] | None = None,
    transient: bool | None = None,
) -> ProviderError:
    """The typed error for an unsuccessful HTTP answer.

    ``message`` says what failed (``"Acme answered 400: <the vendor's message>"``); ``body``
    (when the vendor's message could not be read from it) is appended as a redacted excerpt;
    the hint comes from ``hint``, else ``hints`` (the vendor's, by class), else
    :data:`DEFAULT_HINTS` (``""`` for no hint). ``error_class`` and ``transient`` override
    the table for a vendor's real differences. ``retry_after`` is read from ``headers``.
    """
    cls = error_class or error_class_for_status(status)
    if hint is None:
        hint = (hints or {}).get(cls)
    if hint is None:
        hint = DEFAULT_HINTS.get(cls, "")
    text = message
    excerpt = body_excerpt(body)
    if excerpt:
        text = f"{text}: {excerpt}"
    if hint:
        text = f"{text}; {hint}"
    return cls(
        text,
        provider=provider,
        status_code=status,
        request_id=request_id,
        retry_after=retry_after_from(headers),
        transient=transient,
    )


# -- Retry-After --------------------------------------------------------------------------

_DECIMAL = re.compile(r"\d+(?:\.\d+)?")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not isinstance(headers, httpx.Headers):
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def _seconds(raw: str, scale: float) -> float | None:
    raw = raw.strip()
    if not _DECIMAL.fullmatch(raw):
        return None
    value = float(raw) * scale
    return value if math.isfinite(value) else None


def retry_after_from(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait before retrying, from ``retry-after-ms`` or ``Retry-After``.

    Non-negative decimal numbers only (no sign, NaN or infinity); an HTTP date is counted
    from now (UTC when it has no zone; 0 when it is past). None when absent or unreadable.
    Header names are matched case-insensitively.
    """
    if not headers:
        return None
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        value = _seconds(raw_ms, 0.001)
        if value is not None:
            return value
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    value = _seconds(raw, 1.0)
    if value is not None:
        return value
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# -- body shapes ----------------------------------------------------------------------------


def json_loads(data: str | bytes) -> Any:
    """``json.loads(data)``, decoded by msgspec when it can: about 1.2 µs less for a chat
    stream's event, once per streamed chunk, and the same objects (integers of any size,
    correctly rounded floats, the last of duplicate keys). Whatever msgspec refuses
    (``NaN``, a lone surrogate, a number beyond a double, a body in UTF-16 or with a BOM,
    deep nesting, malformed JSON) is decoded again by ``json.loads``, so those results and
    errors are the standard library's."""
    try:
        return _decode(data)
    except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
        return json.loads(data)


def _first_decode(data: str | bytes) -> Any:
    """Import msgspec on the first decode, not with the library (it takes 15 ms)."""
    global _decode
    try:
        import msgspec.json

        _decode = msgspec.json.decode
    except ImportError:  # pragma: no cover - a dependency on CPython; elsewhere json alone
        _decode = json.loads
    return _decode(data)


_decode: Callable[[str | bytes], Any] = _first_decode


def token_count(value: Any) -> int | None:
    """A token count from a JSON value: a non-negative integer, an integral float, or a
    string of digits (Yandex sends int64 as strings); None for anything else (``"n/a"``,
    ``true``, ``-1``, ``1.5``, a list...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 and value.is_integer() else None
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        return int(value)
    return None


# -- httpx exceptions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransportRule:
    """How one ``httpx`` exception class maps: the error class, what happened, how to fix
    it, and whether it is transient (None: the error class's default)."""

    error: type[ProviderError]
    summary: str
    hint: str
    transient: bool | None = None


_CHECK_NETWORK = "check base_url and the network"
_TIMEOUT_HINT = "raise the provider's timeout or check the network"

#: Every ``httpx`` exception class that maps to a typed error.
TRANSPORT_ERRORS: Mapping[type[Exception], TransportRule] = {
    httpx.RequestError: TransportRule(TransportError, "Request failed", _CHECK_NETWORK),
    httpx.TransportError: TransportRule(TransportError, "Connection failed", _CHECK_NETWORK),
    httpx.TimeoutException: TransportRule(ProviderTimeoutError, "Request timed out", _TIMEOUT_HINT),
    httpx.ConnectTimeout: TransportRule(
        ProviderTimeoutError, "Connecting timed out", "check base_url, the network and the timeout"
    ),
    httpx.ReadTimeout: TransportRule(ProviderTimeoutError, "Request timed out", _TIMEOUT_HINT),
    httpx.WriteTimeout: TransportRule(ProviderTimeoutError, "Request timed out", _TIMEOUT_HINT),
    httpx.PoolTimeout: TransportRule(
        ProviderTimeoutError,
        "No free connection in time",
        "lower the concurrency, or raise the timeout or the connection pool's limits",
    ),
    httpx.NetworkError: TransportRule(TransportError, "Connection failed", _CHECK_NETWORK),
    httpx.ConnectError: TransportRule(TransportError, "Connection failed", _CHECK_NETWORK),
    httpx.ReadError: TransportRule(TransportError, "Connection failed", _CHECK_NETWORK),
    httpx.WriteError: TransportRule(TransportError, "Connection failed", _CHECK_NETWORK),
    httpx.CloseError: TransportRule(TransportError, "Connection failed", _CHECK_NETWORK),
    httpx.ProxyError: TransportRule(
        TransportError, "The proxy failed", "check the proxy settings (HTTPS_PROXY, ALL_PROXY)"
    ),
    httpx.ProtocolError: TransportRule(TransportError, "HTTP protocol error", _CHECK_NETWORK),
    httpx.RemoteProtocolError: TransportRule(
        TransportError,
        "The server broke the HTTP protocol",
        "check base_url (is it an HTTP API?) and any proxy in between",
    ),
    httpx.LocalProtocolError: TransportRule(
        TransportError,
        "The request could not be sent as valid HTTP",
        "check header values (e.g. a credential with a newline) and the request body",
        transient=False,
    ),
    httpx.DecodingError: TransportRule(
        TransportError,
        "The response body could not be decoded",
        "the server or a proxy sent a broken Content-Encoding; retry, or check the proxy",
    ),
    httpx.UnsupportedProtocol: TransportRule(
        TransportConfigurationError,
        "Unsupported URL scheme",
        "base_url must start with https:// or http://",
    ),
    httpx.TooManyRedirects: TransportRule(
        TransportConfigurationError,
        "Too many redirects",
        "point base_url at the API itself, not at an address that redirects",
    ),
    httpx.InvalidURL: TransportRule(
        TransportConfigurationError, "Invalid URL", "check base_url and the request path"
    ),
}

#: ``httpx`` exception classes deliberately not mapped, and why (they propagate unchanged).
UNMAPPED: Mapping[type[Exception], str] = {
    httpx.HTTPError: "an abstract base: httpx raises only its subclasses",
    httpx.StreamError: "a base class of the stream-state errors below",
    httpx.StreamConsumed: "a provider bug: it read a request or response body twice",
    httpx.StreamClosed: "a provider bug: it read a response after closing it",
    httpx.ResponseNotRead: "a provider bug: it used .content of a streamed, unread response",
    httpx.RequestNotRead: "a provider bug: it used .content of a streamed, unread request",
    httpx.CookieConflict: "a provider bug: an ambiguous cookie lookup",
}

#: The hint for a TLS certificate verification failure (a vendor passes its own).
DEFAULT_TLS_HINT = (
    "the server's TLS certificate is not trusted by the CA bundle in use: add the CA that "
    "signed it to the provider's CA bundle (or SSL_CERT_FILE), or check that base_url "
    "names the right host; verify_ssl=False is for development only"
)


def _cert_verify_failure(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it was raised from is a certificate verify failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) or (
            "CERTIFICATE_VERIFY_FAILED" in str(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _rule_for(exc: BaseException) -> TransportRule | None:
    for cls in type(exc).__mro__:
        rule = TRANSPORT_ERRORS.get(cls)
        if rule is not None:
            return rule
    return None


def map_transport_error(
    exc: BaseException, provider: str | None, *, tls_hint: str | None = None
) -> ProviderError | None:
    """The typed error for an ``httpx`` exception, or None when ``exc`` is not one this
    boundary maps (a provider's bug, a cancellation: let those propagate).

    ``tls_hint`` replaces :data:`DEFAULT_TLS_HINT` for a certificate verify failure.
    The caller raises the result ``from exc`` (:func:`mapped_transport_errors` does).
    """
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        try:
            body: str | None = response.text
        except httpx.ResponseNotRead:
            body = None
        return error_for_status(
            response.status_code,
            f"HTTP {response.status_code} from {exc.request.url.host}",
            provider=provider,
            request_id=response.headers.get("x-request-id"),
            headers=response.headers,
            body=body,
        )
    if not isinstance(exc, Exception):
        return None
    rule = _rule_for(exc)
    if rule is None:
        return None
    kind = type(exc).__name__
    detail = f"{kind}: {exc}" if str(exc) else kind
    if isinstance(exc, httpx.TransportError) and _cert_verify_failure(exc):
        return TransportConfigurationError(
            f"TLS certificate verification failed ({detail}); {tls_hint or DEFAULT_TLS_HINT}",
            provider=provider,
        )
    return rule.error(
        f"{rule.summary} ({detail}); {rule.hint}", provider=provider, transient=rule.transient
    )


class _MappedTransportErrors:
    """What :func:`mapped_transport_errors` returns: a plain context manager (no generator,
    no frame kept per request: every API call of every provider enters one)."""

    __slots__ = ("provider", "request_id", "tls_hint", "what")

    def __init__(
        self, provider: str | None, what: str | None, request_id: str | None, tls_hint: str | None
    ) -> None:
        self.provider = provider
        self.what = what
        self.request_id = request_id
        self.tls_hint = tls_hint

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return  # no exception, or a cancellation / KeyboardInterrupt: propagates as is
        mapped = map_transport_error(exc, self.provider, tls_hint=self.tls_hint)
        if mapped is None:
            return
        if self.what:
            mapped.message = redact(f"{self.what}: {mapped.message}")
        if self.request_id is not None and mapped.request_id is None:
            mapped.request_id = self.request_id
        raise mapped from exc


def mapped_transport_errors(
    provider: str | None,
    *,
    what: str | None = None,
    request_id: str | None = None,
    tls_hint: str | None = None,
) -> AbstractContextManager[None]:
    """Raise the typed error (``from`` the original) for any ``httpx`` exception inside.

    ``what`` prefixes the message (``"GigaChat POST /chat/completions failed"``),
    ``request_id`` is set on the error; unmapped exceptions propagate unchanged::

        with mapped_transport_errors(self.name, what="Acme chat"):
            response = await client.send(request)
    """
    return _MappedTransportErrors(provider, what, request_id, tls_hint)
