"""The router's side of a SharedState: when it is asked, and what a refusal gives back."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import ProviderLimits, Router
from orchestrator.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    ProviderError,
    RateLimitError,
)
from orchestrator.health import ProviderSlot
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.state import SharedState

pytestmark = pytest.mark.anyio


class Recording(SharedState):
    """Admits while ``room`` lasts; records every call."""

    name = "recording"

    def __init__(self, room: int) -> None:
        self.room = room
        self.calls: list[tuple[Any, ...]] = []
        self.raise_on_admit: BaseException | None = None

    async def admit(self, slot: ProviderSlot, estimate: int) -> ProviderError | None:
        self.calls.append(("admit", slot.name, estimate))
        if self.raise_on_admit is not None:
            raise self.raise_on_admit
        if self.room <= 0:
            return RateLimitError("shared room exhausted", provider=slot.name)
        self.room -= 1
        return None

    def released(self, slot: ProviderSlot, estimate: int, tokens: int | None) -> None:
        self.calls.append(("released", slot.name, estimate, tokens))

    async def sync(self) -> None:
        self.calls.append(("sync",))

    def snapshot(self) -> dict[str, Any]:
        return {"backend": self.name, "room": self.room}


def make(state: SharedState | None, **limits: int) -> Router:
    router = Router(state=state, registry=PluginRegistry(entry_points=False))
    router.add_provider(
        MockProvider(MockConfig(name="m", response="ok")),
        limits=ProviderLimits(**limits) if limits else None,
    )
    return router


async def test_the_shared_state_is_asked_after_the_local_checks() -> None:
    state = Recording(room=1)
    router = make(state, requests_per_minute=5, tokens_per_minute=1000)
    async with router:
        assert await router.route("hello") == "ok"
        # A success is not synced by the router (the state publishes it before its next
        # admission): nothing is awaited between an answer and its caller.
        kinds = [c[0] for c in state.calls]
        assert kinds == ["admit", "released"]
        assert state.calls[1][3] is not None  # the real token count
        with pytest.raises(AllProvidersFailedError, match="shared room exhausted"):
            await router.route("hello")
    # The refused attempt gave its local reservation back: 1 request counted, not 2.
    limits = router.slots[0].limits
    assert limits is not None and limits.in_flight == 0 and len(limits._requests) == 1
    assert limits._token_sum == sum(n for _, n in limits._tokens)
    assert router.stats()["state"] == {"backend": "recording", "room": 0}
    assert state.calls[-1] == ("sync",)  # leaving the router pushes a last time


async def test_a_local_refusal_never_reaches_the_shared_state() -> None:
    state = Recording(room=10)
    router = make(state, requests_per_minute=1)
    await router.route("a")
    with pytest.raises(AllProvidersFailedError, match="local limit"):
        await router.route("b")
    assert [c[0] for c in state.calls].count("admit") == 1


async def test_an_admission_that_raises_gives_everything_back() -> None:
    state = Recording(room=10)
    state.raise_on_admit = KeyError("bug")
    router = make(state, max_in_flight=1)
    with pytest.raises(KeyError):
        await router.route("a")
    limits = router.slots[0].limits
    assert limits is not None and limits.in_flight == 0
    assert router.slots[0].stats.in_flight == 0


async def test_a_failed_attempt_is_synced_too() -> None:
    state = Recording(room=10)
    router = Router(state=state, registry=PluginRegistry(entry_points=False))
    router.add_provider(MockProvider(MockConfig(name="m", mode="auth_error")))
    with pytest.raises(AllProvidersFailedError):
        await router.route("a")
    assert [c[0] for c in state.calls] == ["admit", "released", "sync"]


async def test_the_default_is_local_and_reports_no_state() -> None:
    router = make(None)
    assert router.state is None
    assert await router.route("a") == "ok"
    assert "state" not in router.stats()


def test_refund_undoes_one_reservation() -> None:
    from orchestrator.limits import LimitState

    state = LimitState(ProviderLimits(requests_per_minute=2, tokens_per_minute=100))
    assert state.try_acquire(30) is None
    assert state.try_acquire(40) is None
    state.refund(40)
    assert state.in_flight == 1 and len(state._requests) == 1 and state._token_sum == 30
    assert state.try_acquire(70) is None


def test_a_breaker_adopts_another_routers_verdict() -> None:
    from orchestrator.health import CircuitBreaker

    now = [100.0]
    breaker = CircuitBreaker(clock=lambda: now[0])
    breaker.adopt(10.0, 5.0, 3)
    assert breaker.state == "open" and breaker.held_for() == 5.0
    assert breaker.export() == ("open", 10.0, 5.0, 3)
    assert breaker.changes == 0  # adopted, not its own: nothing to publish
    breaker.adopt(4.0, 0.0, 1)  # an earlier end never shortens it
    assert breaker.open_for() == 10.0
    now[0] += 11
    assert breaker.state == "half_open"


def test_state_table_needs_an_installed_backend() -> None:
    with pytest.raises(ConfigurationError, match="not an installed state backend"):
        Router.from_config({"state": {"backend": "nope"}, "providers": {"m": {"type": "mock"}}})
