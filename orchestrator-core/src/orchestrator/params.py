"""Sampling parameters: :class:`GenerationParams` (also importable from
:mod:`orchestrator.types` and :mod:`orchestrator`), a pydantic model because it validates
user input before any network call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.tools import (
    TOOL_CHOICE_MODES,
    ResponseFormat,
    Tool,
    as_response_format,
    as_tool,
)

__all__ = ["GenerationParams"]


class GenerationParams(BaseModel):
    """Sampling parameters, validated on creation and on assignment.

    Defaults: ``temperature=0.7``, ``max_tokens=1000``, ``top_p=1.0``, ``stop=None``,
    ``model=None`` (the provider's configured model).
    Providers map them to their vendor's names and ranges and say what they change
    (e.g. GigaChat needs ``temperature > 0``; YandexGPT accepts at most 1).

    Tool use: ``tools`` (each a :class:`~orchestrator.tools.Tool`, a function, a pydantic
    model or a tool dict), ``tool_choice`` (``auto``, ``none``, ``required`` or a tool's
    name), ``parallel_tool_calls``. Structured output: ``response_format`` (a pydantic model
    class, a JSON Schema, ``"json_object"`` or OpenAI's dict). The router sends such requests
    only to providers that can serve them.
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, frozen=False, arbitrary_types_allowed=True
    )

    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(
        default=1000, ge=1, le=1_000_000, description="Upper bound on generated tokens."
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: list[str] | None = Field(
        default=None, max_length=16, description="Sequences that end generation."
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Model for this request only; the provider's config.model when unset. "
        "A provider that cannot switch models per request rejects it before any call.",
    )

    tools: Sequence[Tool] | None = Field(
        default=None, description="Tools the model may call (at most 128)."
    )
    tool_choice: str | None = Field(
        default=None,
        description="'auto' (default with tools), 'none', 'required', or a tool's name.",
    )
    parallel_tool_calls: bool | None = Field(
        default=None, description="Allow several tool calls in one answer (vendor default)."
    )
    response_format: ResponseFormat | None = Field(
        default=None, description="The JSON shape the answer must have; returned parsed."
    )

    @field_validator("tools", mode="before")
    @classmethod
    def _coerce_tools(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            raise ValueError("tools must be a list of tools")
        tools = tuple(as_tool(item) for item in value)
        if not tools:
            return None  # an empty list asks for nothing
        if len(tools) > 128:
            raise ValueError(f"at most 128 tools per request, got {len(tools)}")
        names = [t.name for t in tools]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"two tools are named {duplicate!r}; tool names must be unique")
        return tools

    @field_validator("response_format", mode="before")
    @classmethod
    def _coerce_response_format(cls, value: Any) -> Any:
        return None if value is None else as_response_format(value)

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> GenerationParams:
        choice = self.tool_choice
        if choice is not None and choice not in TOOL_CHOICE_MODES:
            if not self.tools or choice not in {t.name for t in self.tools}:
                raise ValueError(
                    f"tool_choice {choice!r} is neither 'auto', 'none' nor 'required' nor the "
                    "name of one of the request's tools"
                )
        elif choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        return self

    def tool(self, name: str) -> Tool | None:
        """The request's tool called ``name``."""
        return next((t for t in self.tools or () if t.name == name), None)

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not s for s in value):
            raise ValueError("stop sequences must be non-empty strings")
        return value
