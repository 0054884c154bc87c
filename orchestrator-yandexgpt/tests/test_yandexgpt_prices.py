"""The list prices the plugin ships (prices.toml): used by default, overridable by config."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from orchestrator import Router
from orchestrator.pricing import Price, PriceList, cost_of, load_price_list
from orchestrator.testing import LoopbackServer
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import TEST_API_KEY, TEST_FOLDER_ID, YandexGPTEmulator

pytestmark = pytest.mark.anyio


def test_the_provider_ships_its_price_list() -> None:
    prices = YandexGPTProvider.prices
    assert isinstance(prices, PriceList)
    assert prices.origin == "orchestrator_yandexgpt/prices.toml"
    assert prices["yandexgpt-lite"] == Price("0.20", "0.20")
    assert prices["yandexgpt/latest"] == Price("1.20", "1.20")
    assert prices["yandexgpt/rc"] == Price("0.80", "0.80")
    assert prices.table("async")["yandexgpt-lite"] == Price("0.10", "0.10")
    embeddings = {e.model: e.prompt for e in prices.entries if e.mode == "embedding"}
    assert embeddings == {
        "text-search-doc": Decimal("0.0102"),
        "text-search-query": Decimal("0.0102"),
    }
    for entry in prices.entries:  # every figure says where it comes from and when
        assert entry.source.url.startswith("https://")
        assert entry.source.as_of.isoformat() == "2026-03-16"


async def test_a_completion_over_the_emulator_gets_its_list_price_cost(
    make_provider: Any, emulator: YandexGPTEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.pricing")
    router = Router()
    router.add_provider(make_provider())  # model yandexgpt-lite
    async with router:
        completion = await router.chat("How much does this cost?")
        streamed = [chunk async for chunk in router.chat_stream("And this?")]
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.model.endswith("/yandexgpt-lite/latest")
    assert completion.cost == cost_of(completion.usage, Price("0.20", "0.20"))
    assert completion.cost is not None and completion.cost > 0
    assert streamed[-1].cost is not None and streamed[-1].cost > 0
    assert router.stats()["providers"]["yandexgpt"]["cost"] != "0"
    assert not caplog.records


@pytest.mark.parametrize(
    ("model", "price"),
    [("yandexgpt", Price("1.20", "1.20")), ("yandexgpt/rc", Price("0.8", "0.8"))],
)
async def test_each_model_gets_its_own_price(
    make_provider: Any, emulator: YandexGPTEmulator, model: str, price: Price
) -> None:
    router = Router()
    router.add_provider(make_provider(model=model))
    async with router:
        completion = await router.chat("Hi")
    assert completion.cost == cost_of(completion.usage, price)


async def test_router_and_config_prices_override_the_shipped_ones(
    server: LoopbackServer, make_provider: Any, emulator: YandexGPTEmulator
) -> None:
    mine = Price("10", "20")
    router = Router(prices={"yandexgpt": {"*": mine}})
    router.add_provider(make_provider())
    async with router:
        completion = await router.chat("Hi")
    assert completion.cost == cost_of(completion.usage, mine)

    settings = {
        "providers": {
            "yandexgpt": {
                "base_url": server.base_url,
                "api_key": TEST_API_KEY,
                "folder_id": TEST_FOLDER_ID,
                "model": "yandexgpt-lite",
                "prices": {"yandexgpt-lite": {"prompt": "1", "completion": "3"}},
            }
        }
    }
    from_config = Router.from_config(settings)
    async with from_config:
        completion = await from_config.chat("Hi")
    assert completion.cost == cost_of(completion.usage, Price(1, 3))


async def test_a_model_without_a_figure_has_no_cost_and_one_notice(
    make_provider: Any,
    emulator: YandexGPTEmulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.pricing")
    # A fresh list: the shipped one remembers the models it already reported.
    monkeypatch.setattr(YandexGPTProvider, "prices", load_price_list("orchestrator_yandexgpt"))
    router = Router()
    router.add_provider(make_provider(model="llama"))
    async with router:
        first = await router.chat("Hi")
        second = await router.chat("Hi again")
    assert first.usage is not None and first.cost is None and second.cost is None
    notices = [r.getMessage() for r in caplog.records if r.name == "orchestrator.pricing"]
    assert len(notices) == 1, notices
    assert "yandexgpt model" in notices[0] and "llama/latest" in notices[0]
    assert "[providers.<name>.prices." in notices[0]
