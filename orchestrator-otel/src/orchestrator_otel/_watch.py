"""What the state gauges (breaker state, budget left) read when they are collected: the
provider slots seen in attempts and the routers passed to :func:`watch`, held weakly."""

from __future__ import annotations

import threading
import weakref
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator import Router
    from orchestrator.health import ProviderSlot

#: A breaker state as a number: alert on ``== 2`` (open).
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Watched:
    """Provider slots and routers whose state is reported at collection time."""

    def __init__(self) -> None:
        self.slots: weakref.WeakSet[ProviderSlot] = weakref.WeakSet()
        self.routers: weakref.WeakValueDictionary[str, Router] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def add_slot(self, slot: ProviderSlot) -> None:
        if slot not in self.slots:
            with self._lock:
                self.slots.add(slot)

    def add_router(self, router: Router, name: str) -> None:
        with self._lock:
            self.routers[name] = router

    def _all_slots(self) -> dict[str, ProviderSlot]:
        """Every known slot by provider name (the first one seen wins a name)."""
        with self._lock:
            slots = list(self.slots)
            routers = list(self.routers.values())
        found: dict[str, ProviderSlot] = {}
        for router in routers:
            for slot in router.slots:
                found.setdefault(slot.name, slot)
        for slot in slots:
            found.setdefault(slot.name, slot)
        return found

    def breaker_states(self) -> dict[str, int]:
        """Provider name -> 0 closed, 1 half-open, 2 open."""
        return {
            name: BREAKER_STATES.get(slot.breaker.state, 0)
            for name, slot in self._all_slots().items()
        }

    def provider_budgets(self) -> dict[str, float]:
        """Provider name -> roubles left of its budget (providers with a budget only)."""
        return {
            name: float(max(Decimal(0), slot.budget - slot.stats.cost))
            for name, slot in self._all_slots().items()
            if slot.budget is not None
        }

    def router_budgets(self) -> dict[str, float]:
        """Router name -> roubles left of its budget (watched routers with a budget only)."""
        with self._lock:
            routers = list(self.routers.items())
        left = {}
        for name, router in routers:
            budget = router.budget
            if budget is not None:
                spent = Decimal(router.stats()["spent"])
                left[name] = float(max(Decimal(0), budget - spent))
        return left


WATCHED = Watched()


def watch(router: Router, name: str = "default") -> Router:
    """Report ``router``'s budget left (``orchestrator.router.budget.remaining``) and each of
    its providers' breaker state and budget from now on, even before any request; returns
    it. Held weakly: a router that is garbage-collected drops out."""
    WATCHED.add_router(router, name)
    return router
