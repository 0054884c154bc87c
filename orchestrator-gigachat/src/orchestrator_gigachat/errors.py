"""GigaChat HTTP answers -> the orchestrator's typed errors (the boundary mapping).

API errors have the body ``{"status": <int>, "message": "<text>"}``, OAuth errors
``{"code": <int>, "message": "<text>"}``; both may also come as plain text from a proxy.
Every error carries the vendor's message, the ``X-Request-Id`` and ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import TYPE_CHECKING, Any

from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["KEY_HELP", "api_error", "oauth_error", "request_id_of", "retry_after_of"]

KEY_HELP = (
    "get an authorization key in Sber Studio (https://developers.sber.ru/studio: your "
    "GigaChat API project -> Settings -> 'Authorization key') and pass it as api_key or "
    "set GIGACHAT_CREDENTIALS"
)

#: status -> (error class, how to fix it)
_API_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    400: (InvalidRequestError, "the request is malformed; check the messages and parameters"),
    401: (
        AuthenticationError,
        "the access token was rejected even after a refresh; check the authorization key "
        "and scope, or " + KEY_HELP,
    ),
    402: (
        QuotaExceededError,
        "the account's token package or balance is exhausted; buy a package or top up in "
        "Sber Studio",
    ),
    403: (
        PermissionDeniedError,
        "the credentials lack access to this model or endpoint; check the scope "
        "(PERS/B2B/CORP) of the key",
    ),
    404: (
        ModelNotFoundError,
        "no such model or endpoint; check `model` (provider.list_models() lists them) and base_url",
    ),
    413: (ContextLengthError, "the prompt is over the model's context window; shorten it"),
    422: (InvalidRequestError, "fix the parameter named in the message"),
    429: (
        RateLimitError,
        "too many concurrent requests for this account; lower concurrency or retry later",
    ),
}


def request_id_of(response: httpx.Response) -> str | None:
    """The vendor's ``X-Request-Id`` of ``response`` (what GigaChat support asks for)."""
    value: str | None = response.headers.get("x-request-id")
    return value


def retry_after_of(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _body(response: httpx.Response) -> tuple[str, Any]:
    """(vendor message, vendor code) from an error body of either shape."""
    text = response.text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("error_description") or data.get("error")
        code = data.get("code")
        if message:
            return str(message), code
    snippet = " ".join(text.split())[:200]
    return snippet or response.reason_phrase or "no message", None


def api_error(
    response: httpx.Response, *, provider: str, request_id: str | None = None
) -> ProviderError:
    """The typed error for a non-200 answer of an API call (body already read)."""
    status = response.status_code
    message, _ = _body(response)
    cls, fix = _API_ERRORS.get(status, (ProviderError, "unexpected status"))
    if status >= 500:
        cls, fix = ServiceUnavailableError, "GigaChat failed on its side; retry later"
    return cls(
        f"GigaChat answered {status}: {message} ({fix})",
        provider=provider,
        status_code=status,
        request_id=request_id_of(response) or request_id,
        retry_after=retry_after_of(response),
    )


def oauth_error(response: httpx.Response, *, provider: str, scope: str) -> ProviderError:
    """The typed error for a non-200 answer of the OAuth endpoint (body already read)."""
    status = response.status_code
    message, code = _body(response)
    vendor = f"{message} (code {code})" if code is not None else message
    kwargs: dict[str, Any] = {
        "provider": provider,
        "status_code": status,
        "request_id": request_id_of(response),
        "retry_after": retry_after_of(response),
    }
    if status in (400, 401):
        return AuthenticationError(
            f"GigaChat OAuth rejected the authorization key (config.api_key / "
            f"GIGACHAT_CREDENTIALS) for scope {scope}: {vendor}. Check that the key is the "
            f"'Authorization key' of a project with scope {scope} (not the client secret); "
            + KEY_HELP,
            **kwargs,
        )
    if status == 403:
        return PermissionDeniedError(
            f"GigaChat OAuth refused scope {scope}: {vendor}; use the scope of your project "
            "(PERS, B2B or CORP)",
            **kwargs,
        )
    if status == 429:
        return RateLimitError(
            f"GigaChat OAuth rate limit (at most 10 token requests per second per key): {vendor}",
            **kwargs,
        )
    if status >= 500:
        return ServiceUnavailableError(
            f"GigaChat OAuth failed on its side ({status}): {vendor}; retry later", **kwargs
        )
    return ProviderError(f"GigaChat OAuth answered {status}: {vendor}", **kwargs)
