"""Each router error becomes the status the official client maps to the right class."""

from __future__ import annotations

import pytest

from orchestrator.errors import (
    AllProvidersFailedError,
    Attempt,
    AuthenticationError,
    ConfigurationError,
    DeadlineExceededError,
    InvalidRequestError,
    NoProvidersError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    StreamInterruptedError,
    StructuredOutputError,
    UnsupportedCapabilityError,
)
from orchestrator_gateway.errors import GatewayError, from_exception


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ConfigurationError("no such space"), 400, None),
        (TypeError("texts must be strings"), 400, None),
        (
            UnsupportedCapabilityError("needs tools", capability="tools"),
            400,
            "unsupported_capability",
        ),
        (NoProvidersError("every budget spent"), 503, "no_providers"),
        (InvalidRequestError("bad"), 400, None),
        (AuthenticationError("vendor said no"), 502, "upstream_authentication"),
        (QuotaExceededError("spent"), 429, "insufficient_quota"),
        (RateLimitError("slow", retry_after=3), 429, "rate_limit_exceeded"),
        (DeadlineExceededError("late"), 504, "upstream_timeout"),
        (StreamInterruptedError("cut", partial_text="x"), 502, "stream_interrupted"),
        (StructuredOutputError("not json"), 502, "invalid_output"),
        (ServiceUnavailableError("down"), 502, "upstream_error"),
        (ProviderError("odd"), 502, "upstream_error"),
        (RuntimeError("a bug with a secret"), 500, "internal_error"),
    ],
)
def test_single_errors(error: BaseException, status: int, code: str | None) -> None:
    mapped = from_exception(error)
    assert mapped.status == status
    assert mapped.code == code
    assert "secret" not in mapped.message
    assert from_exception(mapped) is mapped


def failed(*errors: Exception, skipped: bool = False) -> AllProvidersFailedError:
    return AllProvidersFailedError(
        [Attempt(f"p{i}", e, skipped=skipped) for i, e in enumerate(errors)]
    )


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (
            failed(RateLimitError("a", retry_after=9), RateLimitError("b", retry_after=4)),
            429,
            "rate_limit_exceeded",
            4,
        ),
        (failed(RateLimitError("a"), QuotaExceededError("b")), 429, "rate_limit_exceeded", None),
        (failed(QuotaExceededError("a"), QuotaExceededError("b")), 429, "insufficient_quota", None),
        (
            failed(ProviderTimeoutError("a"), ProviderTimeoutError("b")),
            504,
            "upstream_timeout",
            None,
        ),
        (
            failed(ServiceUnavailableError("a"), RateLimitError("b", retry_after=2)),
            503,
            "all_providers_failed",
            2,
        ),
        (failed(InvalidRequestError("a"), InvalidRequestError("b")), 400, None, None),
        (
            failed(ServiceUnavailableError("open breaker"), skipped=True),
            503,
            "all_providers_failed",
            None,
        ),
    ],
)
def test_every_provider_failed(
    error: AllProvidersFailedError, status: int, code: str | None, retry_after: float | None
) -> None:
    mapped = from_exception(error)
    assert (mapped.status, mapped.code, mapped.retry_after) == (status, code, retry_after)


def test_headers() -> None:
    error = GatewayError(429, "slow", retry_after=0.25, retry=False, headers={"x-a": "b"})
    assert dict(error.response_headers()) == {
        b"x-a": b"b",
        b"retry-after": b"1",
        b"retry-after-ms": b"250",
        b"x-should-retry": b"false",
    }
