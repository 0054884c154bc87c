"""OpenAI-compatible HTTP answers -> the orchestrator's typed errors (the boundary mapping).

Small and self-contained on purpose: a status -> error table, the ``Retry-After`` parser and
the retry decision, each as the official ``openai`` SDK does it, so the core's coming
``orchestrator.boundary`` module can replace the generic parts later.

- Error body ``{"error": {"message", "type", "param", "code"}}`` (the SDK takes
  ``body["error"]``, or the whole body when that key is absent; plain text from a proxy too).
- Delay: ``retry-after-ms`` (milliseconds) first, then ``retry-after`` (seconds, a float
  allowed, or an HTTP date); used when ``0 < delay <= 120`` s, as the SDK does.
- Whether retrying can help (``ProviderError.transient``), in the SDK's order: a
  ``Retry-After`` over 120 s -> no; ``x-should-retry: true|false`` -> as it says; 408, 409,
  429 and >= 500 -> yes; anything else -> no.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_RETRY_AFTER",
    "api_error",
    "error_fields",
    "request_id_of",
    "retry_after_of",
    "should_retry",
]

#: The longest server-directed delay the SDK waits for (seconds); longer means "don't retry".
MAX_RETRY_AFTER = 120.0

#: status -> (error class, how to fix it)
STATUS_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    400: (InvalidRequestError, "the request was rejected; check the messages and parameters"),
    401: (
        AuthenticationError,
        "the API key was rejected; check api_key / OPENAI_API_KEY (and auth_scheme: Bearer "
        "or Api-Key) for this base_url",
    ),
    402: (QuotaExceededError, "the account has no credit left; top it up"),
    403: (
        PermissionDeniedError,
        "the key lacks access to this model, project or region; check project / organization",
    ),
    404: (
        ModelNotFoundError,
        "no such model or endpoint; check `model` (provider.list_models() lists them) and that "
        "base_url ends in /v1",
    ),
    408: (ProviderTimeoutError, "the server timed out reading the request; retry"),
    409: (ServiceUnavailableError, "a conflicting request holds a lock; retry"),
    413: (ContextLengthError, "the request is too large; shorten the prompt"),
    422: (InvalidRequestError, "fix the parameter named in the message"),
    429: (RateLimitError, "rate limit or quota reached; lower the request rate or retry later"),
}

#: ``code`` values that name a more precise error than the status does.
_CODE_ERRORS: dict[str, type[ProviderError]] = {
    "context_length_exceeded": ContextLengthError,
    "model_not_found": ModelNotFoundError,
    "insufficient_quota": QuotaExceededError,
}


def request_id_of(response: httpx.Response) -> str | None:
    """The server's ``x-request-id`` (what OpenAI support asks for)."""
    value: str | None = response.headers.get("x-request-id")
    return value


def retry_after_of(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks to wait, parsed as the SDK does; None when absent or unparsable.

    ``retry-after-ms`` first, then ``retry-after`` as a number, then as an HTTP date. A
    numeric overflow counts as longer than :data:`MAX_RETRY_AFTER`.
    """
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(header)
        if raw is None:
            continue
        try:
            delay = float(raw)
        except ValueError:
            continue
        if math.isnan(delay):
            continue
        if math.isinf(delay):
            return MAX_RETRY_AFTER + 1
        return delay / divisor
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.timestamp() - (time.time() if now is None else now)


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the SDK would retry a response with ``status`` and ``headers``."""
    delay = retry_after_of(headers)
    if delay is not None and delay > MAX_RETRY_AFTER:
        return False
    verdict = headers.get("x-should-retry")
    if verdict == "true":
        return True
    if verdict == "false":
        return False
    return status in (408, 409, 429) or status >= 500


def error_fields(text: str) -> tuple[str, str | None, str | None]:
    """(message, type, code) from an error body of any shape (JSON or text)."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail") or inner.get("msg")
            kind, code = inner.get("type"), inner.get("code")
            if message:
                return (
                    str(message),
                    None if kind is None else str(kind),
                    None if code is None else str(code),
                )
        elif isinstance(inner, str) and inner:
            return inner, None, None
        detail = data.get("detail") or data.get("message")
        if detail:
            return str(detail), None, None
    snippet = " ".join(text.split())[:200]
    return snippet or "no message", None, None


def api_error(
    response: httpx.Response, *, provider: str, vendor: str = "OpenAI-compatible API"
) -> ProviderError:
    """The typed error for a non-2xx answer (body already read)."""
    status = response.status_code
    message, kind, code = error_fields(response.text)
    cls, fix = STATUS_ERRORS.get(status, (InvalidRequestError, "the request was refused"))
    if status >= 500:
        cls, fix = ServiceUnavailableError, "the server failed on its side; retry later"
    headers = response.headers
    transient = should_retry(status, headers)
    precise = _CODE_ERRORS.get(code or "")
    if precise is not None and status < 500:
        cls = precise
        if precise is QuotaExceededError:  # OpenAI's 429 insufficient_quota: waiting won't help
            fix = "the account's quota or credit is used up; check billing"
            transient = headers.get("x-should-retry") == "true"
    delay = retry_after_of(headers)
    detail = f"{message} (type {kind}, code {code})" if kind or code else message
    return cls(
        f"{vendor} answered {status}: {detail} ({fix})",
        provider=provider,
        status_code=status,
        request_id=request_id_of(response),
        retry_after=None if delay is None or delay <= 0 else delay,
        transient=transient,
    )
