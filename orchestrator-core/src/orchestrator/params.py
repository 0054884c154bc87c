"""Sampling parameters: :class:`GenerationParams` (also importable from
:mod:`orchestrator.types` and :mod:`orchestrator`), a pydantic model because it validates
user input before any network call."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["GenerationParams"]


class GenerationParams(BaseModel):
    """Sampling parameters, validated on creation and on assignment.

    Defaults: ``temperature=0.7``, ``max_tokens=1000``, ``top_p=1.0``, ``stop=None``,
    ``model=None`` (the provider's configured model).
    Providers map them to their vendor's names and ranges and say what they change
    (e.g. GigaChat needs ``temperature > 0``; YandexGPT accepts at most 1).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

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

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not s for s in value):
            raise ValueError("stop sequences must be non-empty strings")
        return value
