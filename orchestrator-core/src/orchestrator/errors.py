"""The one exception hierarchy of the orchestrator.

Every error a provider or the router raises is an :class:`OrchestratorError`::

    OrchestratorError
    ├── ConfigurationError (also ValueError)   bad settings, unknown provider/strategy name
    └── ProviderError                          a provider's call failed
        ├── NoProvidersError                   the router has no provider to ask
        ├── AllProvidersFailedError            every planned provider failed or was skipped;
        │                                      also an ExceptionGroup of each attempt's error
        ├── AuthenticationError                401: bad or expired credentials
        │   └── PermissionDeniedError          403: the credentials lack a role/folder/scope
        ├── InvalidRequestError                400/404/413/422: the request itself is wrong
        │   ├── ModelNotFoundError             404: no such model
        │   └── ContextLengthError             413 / too many input tokens
        ├── QuotaExceededError                 402: balance or tokens exhausted (not transient)
        ├── RateLimitError                     429 (transient, honours ``retry_after``)
        ├── ProviderTimeoutError               timed out (transient; also builtin TimeoutError)
        │   └── DeadlineExceededError          the router's total deadline fired
        ├── ServiceUnavailableError            5xx (transient)
        ├── TransportError                     connect/reset/protocol failure (transient)
        │   └── TransportConfigurationError    bad scheme/URL, untrusted TLS cert (not transient)
        ├── StreamError                        a stream broke or ended without its final event
        │   └── StreamInterruptedError         ...after text reached the caller (partial_text)
        ├── StructuredOutputError              the answer does not match response_format (raw_text)
        │   └── InvalidToolCallError           a tool call names no given tool or has bad arguments
        └── UnsupportedCapabilityError         no provider can serve what the request needs

``NoProvidersError`` and ``AllProvidersFailedError`` are ``ProviderError``\\ s, so code
written for the original project (``except ProviderError`` around ``router.route()``) keeps
catching every failure of a request. Every :class:`ProviderError` carries ``provider``,
``status_code``, ``request_id``, ``retry_after`` (seconds) and ``transient``.
``TimeoutError`` is exported as an alias of :class:`ProviderTimeoutError` for the
custom-provider guide's ``from .base import TimeoutError``; it is a builtin
:class:`TimeoutError` too, so ``except TimeoutError`` keeps working either way.

How HTTP statuses, ``Retry-After`` headers and ``httpx`` exceptions become these errors is
decided in one place, :mod:`orchestrator.boundary`.

Messages never contain secrets: any registered secret (see :mod:`orchestrator.config`) is
replaced by ``***`` before the message is stored.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator._secrets import redact

__all__ = [
    "AllProvidersFailedError",
    "Attempt",
    "AuthenticationError",
    "ConfigurationError",
    "ContextLengthError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "InvalidToolCallError",
    "ModelNotFoundError",
    "NoProvidersError",
    "OrchestratorError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderTimeoutError",
    "QuotaExceededError",
    "RateLimitError",
    "ServiceUnavailableError",
    "StreamError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "TimeoutError",
    "TransportConfigurationError",
    "TransportError",
    "UnsupportedCapabilityError",
]


class OrchestratorError(Exception):
    """Base class of every error raised by the orchestrator."""

    def __init__(self, message: str = "") -> None:
        self.message = redact(str(message))
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConfigurationError(OrchestratorError, ValueError):
    """Settings are invalid, or a provider/strategy name is unknown."""


class ProviderError(OrchestratorError):
    """A provider call failed.

    ``transient`` says whether retrying the same provider may succeed; by default it is
    true for 5xx statuses and false otherwise (subclasses set their own default).
    """

    default_transient: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        if transient is None:
            transient = self.default_transient or (status_code is not None and status_code >= 500)
        self.transient = transient

    def __str__(self) -> str:
        details = []
        if self.provider:
            details.append(f"provider={self.provider}")
        if self.status_code is not None:
            details.append(f"status={self.status_code}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if self.retry_after is not None:
            details.append(f"retry_after={self.retry_after:g}s")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (HTTP 401)."""


class PermissionDeniedError(AuthenticationError):
    """The credentials are valid but lack the permission (HTTP 403)."""


class InvalidRequestError(ProviderError):
    """The request is invalid for this provider; retrying it unchanged will not help."""


class ModelNotFoundError(InvalidRequestError):
    """The requested model does not exist or is not available to this account."""


class ContextLengthError(InvalidRequestError):
    """The prompt does not fit the model's context window."""


class QuotaExceededError(ProviderError):
    """The account's balance or token package is exhausted (HTTP 402)."""


class RateLimitError(ProviderError):
    """Too many requests (HTTP 429); ``retry_after`` says how long to hold off if known."""

    default_transient = True


class ProviderTimeoutError(ProviderError, builtins.TimeoutError):
    """The provider did not answer in time."""

    default_transient = True


#: The name the custom-provider guide imports; the same class as :class:`ProviderTimeoutError`.
TimeoutError = ProviderTimeoutError  # noqa: A001


class DeadlineExceededError(ProviderTimeoutError):
    """The request's total deadline (across retries and fallbacks) ran out."""

    default_transient = False


class ServiceUnavailableError(ProviderError):
    """The provider failed on its side (HTTP 5xx)."""

    default_transient = True


class TransportError(ProviderError):
    """The connection failed: refused, reset, TLS or protocol error."""

    default_transient = True


class TransportConfigurationError(TransportError):
    """The connection cannot work with these settings: an unsupported URL scheme, an
    invalid URL, a redirect loop, or a TLS certificate the CA bundle does not trust.

    Not transient: retrying cannot help until the setting named in the message is fixed
    (the router still fails over to the next provider).
    """

    default_transient = False


class StreamError(ProviderError):
    """A stream broke or ended without its final event."""

    default_transient = True


class StreamInterruptedError(StreamError):
    """A stream failed after some of its text reached the caller.

    It is never failed over (that would mix two providers' output): ``partial_text`` holds
    what the caller already received, ``provider`` who produced it.
    """

    default_transient = False

    def __init__(self, message: str = "", *, partial_text: str = "", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.partial_text = partial_text


class StructuredOutputError(ProviderError):
    """The model answered, but not in the shape asked for (``response_format``).

    ``raw_text`` is the answer as the model gave it; ``errors`` says what did not validate.
    Inside a router it fails over to the next provider unless
    ``Router(on_invalid_output="raise")`` (the answer was billed either way).
    """

    def __init__(
        self,
        message: str = "",
        *,
        raw_text: str = "",
        errors: Sequence[str] = (),
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.raw_text = raw_text
        self.errors = list(errors)


class InvalidToolCallError(StructuredOutputError):
    """A tool call names a tool the request did not give, or its arguments do not match the
    tool's parameter schema; ``raw_text`` holds the arguments as JSON."""


class NoProvidersError(ProviderError):
    """The router has no provider to ask (none added, or every budget is spent)."""


class UnsupportedCapabilityError(NoProvidersError):
    """No provider of the router can serve this request: it needs ``capability`` (tools,
    structured output, embeddings, ...), which none of them has. Raised before any call."""

    def __init__(self, message: str = "", *, capability: str = "", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.capability = capability


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one provider, as recorded by the router.

    ``skipped`` attempts never reached the provider: ``error`` says why (breaker open,
    held off by ``Retry-After``, a local limit, parameters it rejects, budget spent).
    """

    provider: str
    error: Exception
    attempt: int = 1
    elapsed: float = 0.0
    skipped: bool = False

    def describe(self) -> str:
        what = "skipped" if self.skipped else f"attempt {self.attempt}"
        return f"{self.provider} ({what}): {type(self.error).__name__}: {self.error}"


class AllProvidersFailedError(ProviderError, ExceptionGroup[Exception]):
    """Every provider of the plan failed or was skipped; ``attempts`` lists each in order.

    It is also an :class:`ExceptionGroup` of the attempts' errors, so ``except*`` works
    (``except* RateLimitError: ...``), as pydantic-ai's ``FallbackExceptionGroup`` does.
    """

    def __new__(cls, attempts: Sequence[Attempt], message: str = "") -> AllProvidersFailedError:
        errors = [a.error for a in attempts] or [ProviderError("no provider was attempted")]
        return super().__new__(cls, message or "All providers failed", errors)

    def __init__(self, attempts: Sequence[Attempt], message: str = "") -> None:
        self.attempts = list(attempts)
        asked = sum(1 for a in self.attempts if not a.skipped)
        head = message or f"All providers failed after {asked} attempt(s)"
        lines = "\n".join(f"  {a.describe()}" for a in self.attempts)
        super().__init__(head + (":\n" + lines if lines else ""), transient=False)

    # ExceptionGroup's read-only ``message`` would shadow OrchestratorError's attribute.
    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = value

    def derive(self, excs: Sequence[Exception]) -> ExceptionGroup[Exception]:  # type: ignore[override]
        # split() (except*, and trio's cancel scopes on every group passing through) builds
        # its parts with derive: keep the type, so `except ProviderError` still catches them.
        attempts = [a for a in self.attempts if any(a.error is e for e in excs)]
        if len(attempts) == len(excs):
            return AllProvidersFailedError(attempts)
        return ExceptionGroup(self.message, list(excs))

    @property
    def errors(self) -> list[Exception]:
        """The error of each attempt, in order."""
        return [a.error for a in self.attempts]
