"""What a provider can serve (:class:`Capabilities`) and what a request needs.

A provider's capabilities come from what it implements: ``chat``, ``stream`` and ``embed``
count when the provider class overrides them; tools, parallel tool calls and structured
output when it says so (``supports_tools`` ...) and implements ``chat`` — and the contract
kit (:mod:`orchestrator.testing.contract`) runs a standard test for each one it declares,
so a declaration that is not true fails the plugin's own test suite. The router reads them:
a request goes only to providers that can serve it, and a request no provider can serve
fails before any network call with :class:`~orchestrator.errors.UnsupportedCapabilityError`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orchestrator.params import GenerationParams
    from orchestrator.types import Message

__all__ = ["Capabilities", "Capability", "EmbeddingSpace", "required_capabilities"]

Capability = Literal[
    "chat",
    "streaming",
    "tools",
    "parallel_tool_calls",
    "structured_output",
    "embeddings",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider serves natively (every provider answers plain chat and streams:
    ``chat``/``streaming`` False means through :meth:`BaseProvider.generate`)."""

    chat: bool = False
    streaming: bool = False
    tools: bool = False
    #: Several tool calls in one answer (and in one assistant message of the history).
    parallel_tool_calls: bool = False
    structured_output: bool = False
    embeddings: bool = False

    def names(self) -> list[Capability]:
        """The capabilities it has, by name."""
        return [f.name for f in fields(self) if getattr(self, f.name)]  # type: ignore[misc]

    def has(self, capability: Capability) -> bool:
        return bool(getattr(self, capability))


@dataclass(frozen=True, slots=True)
class EmbeddingSpace:
    """The vector space of a provider's embeddings: vectors with the same ``name`` are
    comparable (same model, same dimension), vectors of two spaces are not.

    ``max_batch`` is how many texts one request may carry (the router splits larger
    batches; YandexGPT takes one text per request).
    """

    name: str
    model: str
    dimension: int
    max_batch: int = 1

    def __post_init__(self) -> None:
        if not self.name or not self.model:
            raise ValueError("an EmbeddingSpace needs a name and a model")
        if self.dimension < 1 or self.max_batch < 1:
            raise ValueError("EmbeddingSpace dimension and max_batch must be >= 1")


def required_capabilities(
    messages: tuple[Message, ...], params: GenerationParams | None
) -> tuple[Capability, ...]:
    """What a chat request needs beyond plain chat (empty for most requests)."""
    needed: list[Capability] = []
    tools = params is not None and params.tools is not None
    if tools or any(m.tool_calls or m.role == "tool" for m in messages):
        needed.append("tools")
    if any(len(m.tool_calls) > 1 for m in messages):
        needed.append("parallel_tool_calls")
    if params is not None and params.response_format is not None:
        needed.append("structured_output")
    return tuple(needed)
