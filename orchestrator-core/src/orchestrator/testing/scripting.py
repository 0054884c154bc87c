"""The fault-scripting interface shared by the contract kit's fake server and the vendor
emulators, so tests, the contract kit and ``orchestrator demo`` drive any of them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["ScriptableApp", "ScriptableModel"]


@runtime_checkable
class ScriptableApp(Protocol):
    """An ASGI app (``await app(scope, receive, send)``) whose failures can be scripted.

    Every method is thread-safe: tests call them from the test's loop while the app serves
    from the :class:`~orchestrator.testing.LoopbackServer` thread.
    """

    #: Seconds added before every API response (not OAuth/IAM token calls).
    latency: float
    #: While True every API call answers 503 (an outage).
    outage: bool

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` API calls with ``status`` in the vendor's error shape
        (a ``Retry-After`` header when ``retry_after`` is given)."""

    def cut_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """Close the next ``times`` streaming responses after ``after_chunks`` text chunks,
        without the vendor's final event (a truncated stream)."""

    @property
    def request_count(self) -> int:
        """API calls received so far (token/OAuth calls excluded)."""


@runtime_checkable
class ScriptableModel(Protocol):
    """What the "model" of an emulator answers, scripted (for apps that emulate tools and
    structured output). The contract kit uses it to test each capability a provider
    declares; users use it to test their agents offline.

    A scripted answer is used by the next chat completion (plain or streamed), whatever the
    request says - also a call of a tool the request did not offer, or a reply that does
    not match the request's schema, which is how the failure paths are tested.
    """

    def call_tools_next(self, *calls: tuple[str, Mapping[str, Any]], times: int = 1) -> None:
        """The next ``times`` answers call these tools (``(name, arguments)``, in order)."""

    def reply_next(self, text: str, *, times: int = 1) -> None:
        """The next ``times`` answers are ``text`` (e.g. JSON for structured output)."""
