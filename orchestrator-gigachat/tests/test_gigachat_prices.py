"""GigaChat ships no price figures (none could be confirmed): cost stays null, said once."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from orchestrator import Router
from orchestrator.pricing import Price, PriceList, cost_of, load_price_list
from orchestrator_gigachat import GigaChatProvider

pytestmark = pytest.mark.anyio


def test_the_shipped_list_has_no_figures_and_says_why() -> None:
    prices = GigaChatProvider.prices
    assert isinstance(prices, PriceList)
    assert len(prices) == 0 and prices.entries == ()  # never a made-up number
    assert "tariff" in prices.missing and "https://developers.sber.ru/" in prices.missing
    assert {"GigaChat-2", "GigaChat-2-Pro", "GigaChat-2-Max"} <= set(prices.unpriced)


async def test_cost_is_null_and_the_missing_price_is_reported_once(
    make_provider: Callable[..., GigaChatProvider],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GigaChatProvider, "prices", load_price_list("orchestrator_gigachat"))
    caplog.set_level(logging.WARNING, logger="orchestrator.pricing")
    router = Router()
    router.add_provider(make_provider())
    async with router:
        completions = [await router.chat("Hi") for _ in range(3)]
    assert all(c.usage is not None and c.cost is None for c in completions)
    notices = [r for r in caplog.records if r.name == "orchestrator.pricing"]
    assert len(notices) == 1
    message = notices[0].getMessage()
    assert notices[0].levelno == logging.WARNING
    assert "gigachat model 'GigaChat-2'" in message
    assert '[providers.<name>.prices."GigaChat-2"]' in message


async def test_a_configured_price_gives_a_cost_and_no_notice(
    make_provider: Callable[..., GigaChatProvider], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.pricing")
    provider = make_provider()
    router = Router(prices={provider.name: {"GigaChat-2": Price("1.5", "1.5")}})
    router.add_provider(provider)
    async with router:
        completion = await router.chat("Hi")
    assert completion.cost == cost_of(completion.usage, Price("1.5", "1.5"))
    assert not [r for r in caplog.records if r.name == "orchestrator.pricing"]
