"""Usage, cost and budgets: what every successful (or partly consumed) attempt costs."""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import TYPE_CHECKING

from orchestrator._secrets import get_logger
from orchestrator.pricing import cost_of, find_price

if TYPE_CHECKING:
    from orchestrator.events import UsageCallback, UsageEvent
    from orchestrator.health import ProviderSlot
    from orchestrator.pricing import Price
    from orchestrator.types import Usage

logger = get_logger("orchestrator.router")


class Ledger:
    """Roubles spent by one router, its budget, and the usage callback."""

    __slots__ = ("_prices", "budget", "on_usage", "others", "spent")

    def __init__(self, budget: Decimal | None, on_usage: UsageCallback | None) -> None:
        self.budget = budget
        self.on_usage = on_usage
        self.spent = Decimal(0)
        #: Roubles the other routers sharing this one's state spent, as last reported.
        self.others = Decimal(0)
        # (slot, model) -> its price: looking a model up in a price list tries several keys.
        self._prices: dict[tuple[ProviderSlot, str | None], Price | None] = {}

    def forget(self, slot: ProviderSlot) -> None:
        """Drop what is cached for ``slot`` (it left the router)."""
        for key in [key for key in self._prices if key[0] is slot]:
            del self._prices[key]

    def exhausted(self) -> bool:
        return self.budget is not None and self.spent + self.others >= self.budget

    def account(self, slot: ProviderSlot, usage: Usage | None, model: str | None) -> Decimal | None:
        """Record ``usage`` against ``slot``; its cost in roubles when the price is known."""
        if usage is None:
            return None
        model = model or slot.provider.config.model
        key = (slot, model)
        try:
            price = self._prices[key]
        except KeyError:
            price = self._prices[key] = find_price(slot.prices, model)
        cost = cost_of(usage, price)
        slot.stats.record_usage(usage, cost)
        if cost is not None:
            self.spent += cost
        return cost

    async def report(self, event: UsageEvent) -> None:
        """Tell the usage callback (sync or async); a failing callback is logged."""
        if self.on_usage is None:
            return
        try:
            result = self.on_usage(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.warning("on_usage callback failed", exc_info=True)
