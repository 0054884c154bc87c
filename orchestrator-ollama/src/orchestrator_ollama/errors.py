"""Ollama HTTP answers -> the orchestrator's typed errors (the boundary mapping).

Ollama's error body is ``{"error": "<text>"}`` (only that field); a proxy may answer plain
text. Small and self-contained on purpose, so the core's coming ``orchestrator.boundary``
module can replace the generic parts (the status table, ``Retry-After``) later.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["api_error", "error_text", "pull_hint", "retry_after_of"]

#: status -> (error class, how to fix it)
STATUS_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    400: (InvalidRequestError, "the request was rejected; check the messages and options"),
    401: (
        AuthenticationError,
        "the key was rejected; check api_key / OLLAMA_API_KEY (ollama.com: Settings -> Keys)",
    ),
    403: (PermissionDeniedError, "the key may not use this model or endpoint"),
    404: (ModelNotFoundError, "no such model"),
    422: (InvalidRequestError, "fix the field named in the message"),
    429: (RateLimitError, "rate limited (ollama.com); lower the request rate or retry later"),
}

_MODEL_NOT_FOUND = re.compile(r"""model ['"]?([^'"\s,]+)['"]? not found""")


def pull_hint(model: str) -> str:
    """How to get ``model`` onto the server."""
    return (
        f"pull it with `ollama pull {model}` on the Ollama host (or pick one `ollama list` shows)"
    )


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_text(text: str) -> str:
    """The message of an error body: ``{"error": "..."}``, or the text itself."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if error:
            return str(error)
    return " ".join(text.split())[:200] or "no message"


def api_error(response: httpx.Response, *, provider: str) -> ProviderError:
    """The typed error for a non-2xx answer (body already read)."""
    status = response.status_code
    message = error_text(response.text)
    cls, fix = STATUS_ERRORS.get(status, (InvalidRequestError, "the request was refused"))
    if status >= 500:
        cls, fix = ServiceUnavailableError, "Ollama failed on its side; retry later"
    if status == 404:
        missing = _MODEL_NOT_FOUND.search(message)
        if missing:
            fix = pull_hint(missing.group(1))
        else:  # Go's mux: "404 page not found"
            cls = InvalidRequestError
            fix = "no such endpoint; base_url must be the Ollama server itself (no /api, no /v1)"
    return cls(
        f"Ollama answered {status}: {message} ({fix})",
        provider=provider,
        status_code=status,
        retry_after=retry_after_of(response.headers),
    )
