"""What lifecycle hooks and usage callbacks receive.

:class:`RequestInfo` describes one router call; :class:`UsageEvent` reports the tokens one
attempt consumed. ``Outcome`` is how a request ended: ``"ok"``, ``"error"`` or
``"cancelled"`` (the caller was cancelled, or closed a stream before its final chunk).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orchestrator.params import GenerationParams
    from orchestrator.types import Message, Usage

__all__ = ["Outcome", "RequestInfo", "UsageCallback", "UsageEvent"]

Outcome = Literal["ok", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What lifecycle hooks learn about a request."""

    id: int
    #: ``embed``: ``messages`` holds the texts to embed as user messages.
    kind: Literal["chat", "stream", "embed"]
    messages: tuple[Message, ...]
    params: GenerationParams | None
    started: float


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Tokens one provider consumed for one attempt, as the vendor reported them.

    ``complete`` is False for a stream that failed or was cancelled: ``usage`` is then
    whatever the vendor reported before the end (often None: vendors report usage last).
    """

    provider: str
    model: str | None
    usage: Usage | None
    cost: Decimal | None
    request_id: str | None
    kind: Literal["chat", "stream", "embed"]
    complete: bool = True


UsageCallback = Callable[[UsageEvent], Awaitable[None] | None]
