"""Every failure as OpenAI's error body, with the status the official client maps to the
right exception class (400 BadRequestError, 401 AuthenticationError, 403
PermissionDeniedError, 404 NotFoundError, 413 APIStatusError, 429 RateLimitError, 5xx
InternalServerError).

A vendor's refusal of the gateway's own credentials is a 502, never a 401: the client's key
was fine, and the vendor's reply says nothing the client should act on. Messages are the
orchestrator's own (already redacted of every registered secret); an unexpected exception
(a bug) becomes a generic 500 that names only the exception's type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import (
    AllProvidersFailedError,
    AuthenticationError,
    ConfigurationError,
    ContextLengthError,
    DeadlineExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    NoProvidersError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    StreamInterruptedError,
    StructuredOutputError,
    UnsupportedCapabilityError,
)

__all__ = ["GatewayError", "from_exception"]


@dataclass
class GatewayError(Exception):
    """An HTTP error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    #: Seconds the client should wait (``Retry-After``), when known.
    retry_after: float | None = None
    #: False tells the official client not to retry (``x-should-retry: false``).
    retry: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            # Whole seconds, rounded up: every client parses an integer; the ms header is
            # the precise one (the official client prefers it).
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after)))
            headers["retry-after-ms"] = str(max(1, math.ceil(self.retry_after * 1000)))
        if self.retry is not None:
            headers["x-should-retry"] = "true" if self.retry else "false"
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", code, param)


def from_validation(exc: ValidationError, prefix: str = "") -> GatewayError:
    """A pydantic error on the request: 400 naming the first bad parameter."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    param = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or None)
    message = first["msg"].removeprefix("Value error, ")
    return bad_request(f"{param}: {message}" if param else message, param)


def _held_off(errors: Iterable[Exception]) -> float | None:
    """The shortest ``retry_after`` among rate-limit errors (the soonest a provider frees)."""
    waits = [e.retry_after for e in errors if isinstance(e, RateLimitError) and e.retry_after]
    return min(waits) if waits else None


def from_exception(exc: BaseException) -> GatewayError:
    """The HTTP error for an exception the router (or the request's validation) raised."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation(exc)
    if isinstance(exc, ConfigurationError):  # e.g. an embedding space or provider unknown
        return bad_request(str(exc))
    if isinstance(exc, ValueError | TypeError):  # the router's own input checks
        return bad_request(str(exc))
    if isinstance(exc, AllProvidersFailedError):
        return _all_failed(exc)
    if isinstance(exc, ProviderError):
        return _provider_error(exc)
    return GatewayError(
        500,
        f"The gateway failed unexpectedly ({type(exc).__name__}); see its log",
        "server_error",
        "internal_error",
    )


def _all_failed(exc: AllProvidersFailedError) -> GatewayError:
    errors = exc.errors
    real = [a.error for a in exc.attempts if not a.skipped] or errors
    message = str(exc)
    invalid = [e for e in real if isinstance(e, InvalidRequestError)]
    if real and len(invalid) == len(real):
        # Every provider said the request itself is wrong: the client's to fix.
        return _provider_error(invalid[0], message)
    if errors and all(isinstance(e, RateLimitError | QuotaExceededError) for e in errors):
        if all(isinstance(e, QuotaExceededError) for e in errors):
            return GatewayError(
                429, message, "insufficient_quota", "insufficient_quota", retry=False
            )
        return GatewayError(
            429, message, "rate_limit_error", "rate_limit_exceeded", retry_after=_held_off(errors)
        )
    if real and all(isinstance(e, ProviderTimeoutError) for e in real):
        return GatewayError(504, message, "timeout", "upstream_timeout")
    if real and all(isinstance(e, AuthenticationError) for e in real):
        return GatewayError(502, message, "server_error", "upstream_authentication", retry=False)
    return GatewayError(
        503, message, "server_error", "all_providers_failed", retry_after=_held_off(errors)
    )


def _provider_error(exc: ProviderError, message: str | None = None) -> GatewayError:
    text = message or str(exc)
    if isinstance(exc, UnsupportedCapabilityError):
        return bad_request(text, code="unsupported_capability")
    if isinstance(exc, NoProvidersError):  # no provider, or every budget spent
        return GatewayError(503, text, "server_error", "no_providers", retry=False)
    if isinstance(exc, ModelNotFoundError):
        return GatewayError(404, text, "invalid_request_error", "model_not_found", "model")
    if isinstance(exc, ContextLengthError):
        return bad_request(text, "messages", "context_length_exceeded")
    if isinstance(exc, InvalidRequestError):
        return bad_request(text)
    if isinstance(exc, AuthenticationError):
        return GatewayError(502, text, "server_error", "upstream_authentication", retry=False)
    if isinstance(exc, QuotaExceededError):
        return GatewayError(429, text, "insufficient_quota", "insufficient_quota", retry=False)
    if isinstance(exc, RateLimitError):
        return GatewayError(
            429, text, "rate_limit_error", "rate_limit_exceeded", retry_after=exc.retry_after
        )
    if isinstance(exc, DeadlineExceededError | ProviderTimeoutError):
        return GatewayError(504, text, "timeout", "upstream_timeout")
    if isinstance(exc, StreamInterruptedError):
        return GatewayError(502, text, "server_error", "stream_interrupted")
    if isinstance(exc, StructuredOutputError):
        return GatewayError(502, text, "server_error", "invalid_output")
    return GatewayError(502, text, "server_error", "upstream_error")
