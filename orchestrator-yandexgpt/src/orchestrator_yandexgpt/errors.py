"""YandexGPT error bodies mapped to the orchestrator's typed errors.

Two body shapes are accepted (see the wire spec): the Yandex Cloud gRPC-status shape
``{"code": 16, "message": ..., "details": [...]}`` and the one seen on llm.api
``{"error": {"grpcCode": 16, "httpCode": 401, "message": ..., "httpStatus": ...}}``.

The HTTP status table, ``Retry-After`` parsing and the ``httpx`` map are the core's
(:mod:`orchestrator.boundary`); this module keeps what is Yandex's own: the body shapes, the
gRPC codes (which win over the HTTP status: ``DEADLINE_EXCEEDED``/504 is a timeout here), the
"input tokens" message that means :class:`ContextLengthError`, and the fix-it hints.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from typing import Any

from orchestrator.boundary import body_excerpt, error_class_for_status, error_for_status
from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)

__all__ = [
    "GRPC_TO_HTTP",
    "TLS_HINT",
    "ErrorInfo",
    "error_from_info",
    "error_from_response",
    "parse_error_body",
]

#: The hint of a TLS certificate verify failure. Yandex Cloud's certificates chain to public
#: CAs, so a failure usually means a TLS-inspecting proxy: trust its CA through ca_bundle.
TLS_HINT = (
    "the server's TLS certificate is not trusted: if a corporate proxy inspects TLS, set "
    "ca_bundle to a PEM file with its CA; otherwise check base_url"
)

#: gRPC status code -> HTTP status, as the API pairs them.
GRPC_TO_HTTP = {
    3: 400,
    4: 504,
    5: 404,
    7: 403,
    8: 429,
    12: 501,
    13: 500,
    14: 503,
    16: 401,
}
_HTTP_TO_GRPC = {http: grpc for grpc, http in GRPC_TO_HTTP.items()}
#: gRPC status code -> error class (the code decides when the body has one).
_GRPC_ERRORS: dict[int, type[ProviderError]] = {
    3: InvalidRequestError,  # INVALID_ARGUMENT
    4: ProviderTimeoutError,  # DEADLINE_EXCEEDED (HTTP 504)
    5: ModelNotFoundError,  # NOT_FOUND
    7: PermissionDeniedError,  # PERMISSION_DENIED
    8: RateLimitError,  # RESOURCE_EXHAUSTED
    13: ServiceUnavailableError,  # INTERNAL
    14: ServiceUnavailableError,  # UNAVAILABLE
    16: AuthenticationError,  # UNAUTHENTICATED
}
_TOKEN_LIMIT = re.compile(r"input tokens must be no more than", re.IGNORECASE)


class ErrorInfo:
    """What an error body said: gRPC code, HTTP status, message and request id."""

    __slots__ = ("grpc_code", "http_code", "message", "request_id")

    def __init__(
        self,
        grpc_code: int | None,
        http_code: int | None,
        message: str,
        request_id: str | None = None,
    ) -> None:
        self.grpc_code = grpc_code
        self.http_code = http_code
        self.message = message
        self.request_id = request_id


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_error_body(body: Any) -> ErrorInfo | None:
    """The error described by a decoded JSON body in either shape, or None."""
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    if isinstance(inner, dict):
        grpc = _as_int(inner.get("grpcCode", inner.get("code")))
        http = _as_int(inner.get("httpCode"))
        message = str(inner.get("message") or inner.get("httpStatus") or "")
        details = inner.get("details")
    elif "code" in body and ("message" in body or "details" in body):
        grpc = _as_int(body.get("code"))
        http = None
        message = str(body.get("message") or "")
        details = body.get("details")
    else:
        return None
    request_id = None
    if isinstance(details, list):
        for item in details:
            if isinstance(item, dict) and item.get("requestId"):
                request_id = str(item["requestId"])
                break
    return ErrorInfo(grpc, http, message, request_id)


def _classify(grpc: int | None, status: int | None, message: str) -> type[ProviderError]:
    code = grpc if grpc is not None else _HTTP_TO_GRPC.get(status or 0)
    cls = _GRPC_ERRORS.get(code) if code is not None else None
    if cls is None:
        cls = error_class_for_status(status) if status is not None else ProviderError
    if cls in (InvalidRequestError, ContextLengthError):
        return ContextLengthError if _TOKEN_LIMIT.search(message) else InvalidRequestError
    return cls


_HINTS: dict[type[ProviderError], str] = {
    AuthenticationError: "check the API key / IAM token (IAM tokens expire after 12 h)",
    PermissionDeniedError: "check folder_id (it must be the folder of the key's service "
    "account and of the model URI) and that the account has the role "
    "ai.languageModels.user in that folder",
    RateLimitError: "slow down or ask Yandex Cloud support for a larger quota",
    ContextLengthError: "shorten the prompt or the conversation",
    InvalidRequestError: "check the model name and the parameters",
    ModelNotFoundError: "check the model name",
}


def error_from_response(
    status: int,
    content: bytes,
    *,
    provider: str,
    request_id: str | None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
    what: str = "YandexGPT request",
) -> ProviderError:
    """The typed error for an unsuccessful HTTP response (``Retry-After`` read from
    ``headers`` unless ``retry_after`` is given)."""
    body: Any = None
    with contextlib.suppress(ValueError, RecursionError):
        body = json.loads(content)
    info = parse_error_body(body)
    if info is None:
        info = ErrorInfo(None, status, body_excerpt(content) or f"HTTP {status}")
    return error_from_info(
        info,
        status=status,
        provider=provider,
        request_id=request_id,
        retry_after=retry_after,
        headers=headers,
        what=what,
    )


def error_from_info(
    info: ErrorInfo,
    *,
    status: int | None,
    provider: str,
    request_id: str | None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
    what: str = "YandexGPT request",
) -> ProviderError:
    """The typed error for a parsed error (from a response, a stream line or an operation)."""
    if status is None:
        status = info.http_code or GRPC_TO_HTTP.get(info.grpc_code or -1)
    cls = _classify(info.grpc_code, status, info.message)
    code = f" (gRPC code {info.grpc_code})" if info.grpc_code is not None else ""
    message = f"{what} failed{code}: {body_excerpt(info.message)}"
    request_id = request_id or info.request_id
    if status is None:
        hint = _HINTS.get(cls)
        return cls(
            message + (f"; {hint}" if hint else ""),
            provider=provider,
            request_id=request_id,
            retry_after=retry_after,
        )
    error = error_for_status(
        status,
        message,
        provider=provider,
        request_id=request_id,
        headers=headers,
        error_class=cls,
        hints=_HINTS,
    )
    if retry_after is not None:
        error.retry_after = retry_after
    return error
