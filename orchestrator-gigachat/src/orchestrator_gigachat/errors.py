"""GigaChat HTTP answers -> the orchestrator's typed errors.

The status table, ``Retry-After`` parsing and the ``httpx`` exception map are the core's
(:mod:`orchestrator.boundary`); this module keeps only what is GigaChat's own: its body shapes
(API errors ``{"status": <int>, "message": "<text>"}``, OAuth errors ``{"code": <int>,
"message": "<text>"}``, or plain text from a proxy), the OAuth endpoint's meaning of each
status, and the fix-it hints. Every error carries the vendor's message, the ``X-Request-Id``
and ``Retry-After``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestrator.boundary import (
    body_excerpt,
    error_class_for_status,
    error_for_status,
    is_transient_status,
    retry_after_from,
)
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

__all__ = ["KEY_HELP", "TLS_HINT", "api_error", "oauth_error", "request_id_of", "retry_after_of"]

KEY_HELP = (
    "get an authorization key in Sber Studio (https://developers.sber.ru/studio: your "
    "GigaChat API project -> Settings -> 'Authorization key') and pass it as api_key or "
    "set GIGACHAT_CREDENTIALS"
)

#: The hint of a TLS certificate verify failure: GigaChat's CA is not in certifi.
TLS_HINT = (
    "GigaChat's certificates are issued by the Russian Trusted Root CA, which the default CA "
    "bundle does not include: download it (https://www.gosuslugi.ru/crt, PEM) and set "
    "ca_bundle_file / GIGACHAT_CA_BUNDLE_FILE to its path"
)

#: GigaChat's fix-it hint for each error class of the core's status table.
_API_HINTS: dict[type[ProviderError], str] = {
    InvalidRequestError: "the request is malformed; check the messages and parameters",
    AuthenticationError: "the access token was rejected even after a refresh; check the "
    "authorization key and scope, or " + KEY_HELP,
    QuotaExceededError: "the account's token package or balance is exhausted; buy a package "
    "or top up in Sber Studio",
    PermissionDeniedError: "the credentials lack access to this model or endpoint; check the "
    "scope (PERS/B2B/CORP) of the key",
    ModelNotFoundError: "no such model or endpoint; check `model` (provider.list_models() "
    "lists them) and base_url",
    ContextLengthError: "the prompt is over the model's context window; shorten it",
    RateLimitError: "too many concurrent requests for this account; lower concurrency or "
    "retry later",
    ServiceUnavailableError: "GigaChat failed on its side; retry later",
}


def request_id_of(response: httpx.Response) -> str | None:
    """The vendor's ``X-Request-Id`` of ``response`` (what GigaChat support asks for)."""
    value: str | None = response.headers.get("x-request-id")
    return value


def retry_after_of(response: httpx.Response) -> float | None:
    """``Retry-After`` of ``response`` in seconds, or None (the core's one parser:
    :func:`orchestrator.boundary.retry_after_from`)."""
    return retry_after_from(response.headers)


def _body(response: httpx.Response) -> tuple[str, Any]:
    """(vendor message, vendor code) from an error body of either shape; for any other body
    a redacted excerpt of it (redacted before it is cut)."""
    text = response.text
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("error_description") or data.get("error")
        code = data.get("code")
        if message:
            return body_excerpt(str(message)), code if isinstance(code, int | str) else None
    return body_excerpt(text) or response.reason_phrase or "no message", None


def api_error(
    response: httpx.Response, *, provider: str, request_id: str | None = None
) -> ProviderError:
    """The typed error for a non-200 answer of an API call (body already read)."""
    status = response.status_code
    message, _ = _body(response)
    return error_for_status(
        status,
        f"GigaChat answered {status}: {message}",
        provider=provider,
        request_id=request_id_of(response) or request_id,
        headers=response.headers,
        hints=_API_HINTS,
        hint="fix the parameter named in the message" if status == 422 else None,
    )


def oauth_error(response: httpx.Response, *, provider: str, scope: str) -> ProviderError:
    """The typed error for a non-200 answer of the OAuth endpoint (body already read).

    Here 400 means a bad key or scope (an :class:`AuthenticationError`), and statuses the API
    table would read as a model or a request problem are the endpoint's own (``ProviderError``).
    """
    status = response.status_code
    message, code = _body(response)
    vendor = f"{message} (code {code})" if code is not None else message
    error_class: type[ProviderError] = ProviderError
    hint = "check auth_url"
    if status in (400, 401):
        error_class = AuthenticationError
        text = (
            f"GigaChat OAuth rejected the authorization key (config.api_key / "
            f"GIGACHAT_CREDENTIALS) for scope {scope}: {vendor}"
        )
        hint = (
            f"check that the key is the 'Authorization key' of a project with scope {scope} "
            "(not the client secret); " + KEY_HELP
        )
    elif status == 403:
        error_class = PermissionDeniedError
        text = f"GigaChat OAuth refused scope {scope}: {vendor}"
        hint = "use the scope of your project (PERS, B2B or CORP)"
    elif status == 429:
        error_class = RateLimitError
        text = f"GigaChat OAuth rate limit (at most 10 token requests per second per key): {vendor}"
        hint = ""
    elif is_transient_status(status):
        error_class = error_class_for_status(status)
        text = f"GigaChat OAuth failed on its side ({status}): {vendor}"
        hint = "retry later"
    else:
        text = f"GigaChat OAuth answered {status}: {vendor}"
    return error_for_status(
        status,
        text,
        provider=provider,
        request_id=request_id_of(response),
        headers=response.headers,
        error_class=error_class,
        hint=hint,
    )
