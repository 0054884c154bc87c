"""Prices in roubles and the cost of a call, from the usage the vendor reported.

A :class:`Price` is roubles per 1,000 tokens, prompt and completion separately. Providers
may ship defaults (the class attribute ``prices``, keyed by model); the router's ``prices``
argument overrides them per provider and model. Costs are ``Decimal`` (money is not float).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.types import Usage

__all__ = ["Price", "PriceTable", "cost_of"]

_THOUSAND = Decimal(1000)


@dataclass(frozen=True, slots=True)
class Price:
    """Roubles per 1,000 prompt tokens and per 1,000 completion tokens."""

    prompt: Decimal
    completion: Decimal

    def __init__(self, prompt: Decimal | float | str, completion: Decimal | float | str) -> None:
        p, c = Decimal(str(prompt)), Decimal(str(completion))
        if p < 0 or c < 0:
            raise ValueError("prices must be >= 0")
        object.__setattr__(self, "prompt", p)
        object.__setattr__(self, "completion", c)


#: ``{model: Price}``; the key ``"*"`` applies to models without their own entry.
PriceTable = Mapping[str, Price]


def cost_of(usage: Usage | None, price: Price | None) -> Decimal | None:
    """Cost in roubles of ``usage`` at ``price`` (None when either is unknown)."""
    if usage is None or price is None:
        return None
    return (
        usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion
    ) / _THOUSAND


def find_price(table: PriceTable | None, model: str | None) -> Price | None:
    """The price of ``model`` in ``table``: exact name, then its base name, then ``"*"``."""
    if not table:
        return None
    if model:
        if model in table:
            return table[model]
        base = model.split(":", 1)[0].split("/", 1)[0]  # "GigaChat:2.0.28" -> "GigaChat"
        if base in table:
            return table[base]
    return table.get("*")
