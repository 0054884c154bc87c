"""Router.view: a strategy over some of a router's providers that shares their state (the
gateway's virtual models)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator import Router
from orchestrator.errors import ConfigurationError, NoProvidersError, ServiceUnavailableError
from orchestrator.health import BreakerConfig
from orchestrator.plugins import PluginRegistry
from orchestrator.pricing import Price
from orchestrator.providers.mock import MockConfig, MockProvider

pytestmark = pytest.mark.anyio


def router(**options: object) -> Router:
    r = Router(
        "first-available",
        registry=PluginRegistry(),
        breaker=BreakerConfig(consecutive_failures=1, cooldown=60),
        **options,  # type: ignore[arg-type]
    )
    for name in ("a", "b", "c"):
        r.add_provider(
            MockProvider(MockConfig(name=name, response=name, max_retries=0)),
            prices={"*": Price("1", "1")},
        )
    return r


async def test_a_view_routes_over_its_providers_only() -> None:
    r = router()
    view = r.view(["c", "b"])
    assert [p.config.name for p in view.providers] == ["c", "b"]
    assert (await view.route("hi")) == "b"  # first-available keeps the router's priorities
    assert (await r.route("hi")) == "a"
    assert r.view(["c"], "round-robin").strategy_name == "round-robin"
    assert view.strategy_name == "first-available"
    assert r.view(["a"], r.strategy).strategy is r.strategy


async def test_a_view_shares_breakers_and_spend() -> None:
    r = router(budget="0.05")
    view = r.view(["b", "c"])
    r.slots[1].breaker.on_failure(ServiceUnavailableError("down"))  # b opens...
    assert (await view.route("hi")) == "c"  # ...for the view too
    assert r.stats()["spent"] == view.stats()["spent"] != "0"
    while Decimal(r.stats()["spent"]) < Decimal("0.05"):
        await r.route("hi")
    with pytest.raises(NoProvidersError, match="budget"):
        await view.route("hi")  # the router's budget is the view's


def test_a_view_needs_known_distinct_providers() -> None:
    r = router()
    for names in ([], ["a", "a"], ["z"]):
        with pytest.raises(ConfigurationError, match="distinct provider names"):
            r.view(names)
    with pytest.raises(ConfigurationError):
        r.view(["a"], "no-such-strategy")
