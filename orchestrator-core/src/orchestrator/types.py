"""The data that flows through the router: messages in; completions and chunks out.

``Message``, ``Usage``, ``Completion`` and ``Chunk`` are slotted dataclasses (they are on the
hot path of every call); ``GenerationParams`` is a pydantic model because it validates user
input before any network call. It lives in :mod:`orchestrator.params` and is imported from
here on first use, so ``from orchestrator import Router`` does not build a pydantic model.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from orchestrator.params import GenerationParams


__all__ = [
    "Chunk",
    "Completion",
    "FinishReason",
    "GenerationParams",
    "Message",
    "Role",
    "Usage",
    "coerce_messages",
]

Role = Literal["system", "user", "assistant"]
_ROLES = frozenset(("system", "user", "assistant"))

#: Why generation stopped. ``content_filter`` means the vendor refused (GigaChat
#: ``blacklist``, YandexGPT ``CONTENT_FILTER``): the text is not a normal answer.
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "function_call", "error"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``role`` is ``system``, ``user`` or ``assistant``."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(
                f"Message role must be one of system, user, assistant; got {self.role!r}"
            )
        if not isinstance(self.content, str):
            raise TypeError(f"Message content must be str, got {type(self.content).__name__}")


def coerce_messages(
    messages: Iterable[Message | Mapping[str, Any]] | str,
) -> tuple[Message, ...]:
    """Validate ``messages`` (``Message`` objects or ``{"role", "content"}`` dicts).

    Raises ``ValueError`` for an empty list, an unknown role or unexpected keys, so bad
    input fails before any network call.
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    if isinstance(messages, tuple | list):
        # Fast path: Message objects were validated when built; counting their types runs in
        # C (countOf compares by identity first; a third faster than building a set).
        as_tuple = tuple(messages)
        if as_tuple and operator.countOf(map(type, as_tuple), Message) == len(as_tuple):
            return as_tuple
    result: list[Message] = []
    for index, item in enumerate(messages):
        if isinstance(item, Message):
            result.append(item)
            continue
        if not isinstance(item, Mapping):
            raise TypeError(
                f"messages[{index}] must be a Message or a dict, got {type(item).__name__}"
            )
        unknown = set(item) - {"role", "content"}
        if unknown:
            raise ValueError(
                f"messages[{index}] has unsupported keys {sorted(unknown)}; "
                "only 'role' and 'content' are understood"
            )
        try:
            result.append(Message(item["role"], item["content"]))
        except KeyError as exc:
            raise ValueError(f"messages[{index}] is missing {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"messages[{index}]: {exc}") from None
    if not result:
        raise ValueError("messages must contain at least one message")
    return tuple(result)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts exactly as the vendor reported them (never re-estimated)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Prompt tokens served from the vendor's cache (GigaChat ``precached_prompt_tokens``).
    cached_prompt_tokens: int | None = None
    #: Tokens spent on hidden reasoning (YandexGPT ``reasoningTokens``).
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer."""

    text: str
    provider: str
    model: str | None = None
    finish_reason: FinishReason | None = "stop"
    usage: Usage | None = None
    #: The vendor's request id (what their support asks for).
    request_id: str | None = None
    #: Seconds from the start of the successful attempt to the answer.
    latency: float = 0.0
    #: Cost in roubles, when a price is known for this provider and model.
    cost: Decimal | None = None
    #: Vendor fields the common shape has no place for (e.g. the model version).
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed answer: ``delta`` is new text only (never cumulative).

    The last chunk of a stream carries ``finish_reason`` and, when the vendor reports it,
    ``usage``.
    """

    delta: str
    provider: str = ""
    model: str | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    request_id: str | None = None
    #: Cost in roubles of the whole stream, set by the router on the last chunk.
    cost: Decimal | None = None


def __getattr__(name: str) -> Any:
    if name == "GenerationParams":
        from orchestrator.params import GenerationParams

        return GenerationParams
    raise AttributeError(f"module 'orchestrator.types' has no attribute {name!r}")
