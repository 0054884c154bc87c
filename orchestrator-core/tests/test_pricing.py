"""Shipped price lists: the loader, model lookup, the one-time notice for a missing price."""

from __future__ import annotations

import logging
import textwrap
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.pricing import (
    Price,
    PriceList,
    describe_prices,
    find_price,
    parse_price_list,
)

LIST = textwrap.dedent(
    """
    provider = "acme"
    currency = "RUB"
    missing = "Acme publishes no tariff for it"

    [sources.page]
    title = "Acme pricing"
    url = "https://acme.example/pricing"
    as_of = 2026-03-16
    how = "read by hand"

    [[prices]]
    model = "acme-lite"
    name = "Acme Lite"
    prompt = "0.20"
    completion = "0.40"
    cached = "0.10"
    source = "page"

    [[prices]]
    model = "acme-pro/rc"
    name = "Acme Pro RC"
    prompt = "1"
    completion = "2"
    source = "page"

    [[prices]]
    model = "acme-lite"
    name = "Acme Lite"
    mode = "async"
    prompt = "0.10"
    completion = "0.20"
    source = "page"

    [[prices]]
    model = "acme-embed"
    name = "Acme embeddings"
    mode = "embedding"
    prompt = "0.01"
    source = "page"

    [[prices]]
    name = "Acme Secret Model"
    prompt = "5"
    completion = "5"
    source = "page"
    note = "no model id given"

    [unpriced]
    "acme-max" = "not on the page yet"
    """
)


@pytest.fixture
def prices() -> PriceList:
    return parse_price_list(LIST, "acme/prices.toml")


def test_loader_keeps_every_figure_with_its_source(prices: PriceList) -> None:
    assert prices.provider == "acme" and prices.currency == "RUB"
    assert len(prices.entries) == 5
    lite = prices.entries[0]
    assert (lite.model, lite.name, lite.mode) == ("acme-lite", "Acme Lite", "sync")
    assert (lite.prompt, lite.completion) == (Decimal("0.20"), Decimal("0.40"))
    assert lite.extra == {"cached": Decimal("0.10")}
    assert lite.source.url == "https://acme.example/pricing"
    assert lite.source.as_of == date(2026, 3, 16)
    assert prices.unpriced == {"acme-max": "not on the page yet"}


def test_the_table_holds_sync_and_embedding_prices_with_a_model(prices: PriceList) -> None:
    # Router.embed prices embeddings through the same table (input tokens only).
    embedding = {"acme-embed": Price("0.01", 0)}
    assert dict(prices) == {
        "acme-lite": Price("0.20", "0.40"),
        "acme-pro/rc": Price(1, 2),
        **embedding,
    }
    assert prices.table("async") == {"acme-lite": Price("0.10", "0.20")}
    assert prices.table("embedding") == embedding


def test_an_empty_list_is_truthy_so_the_router_keeps_it() -> None:
    empty = parse_price_list('provider = "none"\nmissing = "no tariff"')
    assert len(empty) == 0 and bool(empty)
    assert describe_prices(empty)["prices"] == []


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("acme-lite", Price("0.20", "0.40")),
        ("gpt://b1gfolder/acme-lite/latest", Price("0.20", "0.40")),  # any version
        ("gpt://b1gfolder/acme-pro/rc", Price(1, 2)),
        ("acme-lite/rc", Price("0.20", "0.40")),
        ("acme-lite:2.0.28", Price("0.20", "0.40")),
    ],
)
def test_lookup_of_names_versions_and_uris(prices: PriceList, model: str, expected: Price) -> None:
    assert find_price(prices, model) == expected


def test_short_name_means_latest() -> None:
    table = {"yandexgpt/latest": Price("1.2", "1.2"), "yandexgpt/rc": Price("0.8", "0.8")}
    assert find_price(table, "yandexgpt") == Price("1.2", "1.2")
    assert find_price(table, "gpt://f/yandexgpt/latest") == Price("1.2", "1.2")
    assert find_price(table, "gpt://f/yandexgpt/rc") == Price("0.8", "0.8")
    assert find_price(table, "gpt://f/yandexgpt/deprecated") is None  # no figure: no guess


def test_a_missing_price_is_reported_once_per_model_with_the_config_key(
    prices: PriceList, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.pricing")
    for _ in range(3):
        assert find_price(prices, "acme-max") is None
        assert find_price(prices, "gpt://b1g/acme-max/latest") is None
    assert find_price(prices, "acme-lite") is not None
    records = [r for r in caplog.records if r.name == "orchestrator.pricing"]
    assert len(records) == 2, [r.getMessage() for r in records]
    first = records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    assert "acme model 'acme-max'" in first
    assert "Acme publishes no tariff for it" in first and "not on the page yet" in first
    assert '[providers.<name>.prices."acme-max"]' in first
    assert "Router(prices=" in first
    assert '[providers.<name>.prices."acme-max/latest"]' in records[1].getMessage()


def test_plain_tables_and_unknown_models_say_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="orchestrator.pricing")
    assert find_price({"x": Price(1, 1)}, "y") is None
    assert find_price(parse_price_list('provider = "p"'), None) is None
    assert not caplog.records


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("currency = 'RUB'", "needs provider"),
        ("provider = 'p'\n[[prices]]\nmodel = 'm'\nprompt = '1'\nsource = 'nowhere'", "source"),
        (
            "provider = 'p'\n[sources.s]\ntitle = 't'\nurl = 'u'\nas_of = 'yesterday'",
            "as_of",
        ),
        (
            "provider = 'p'\n[sources.s]\ntitle = 't'\nurl = 'u'\nas_of = 2026-01-01\n"
            "[[prices]]\nmodel = 'm'\nprompt = '-1'\ncompletion = '1'\nsource = 's'",
            ">= 0",
        ),
        (
            "provider = 'p'\n[sources.s]\ntitle = 't'\nurl = 'u'\nas_of = 2026-01-01\n"
            "[[prices]]\nmodel = 'm'\nprompt = 'cheap'\nsource = 's'",
            "not a number",
        ),
        (
            "provider = 'p'\n[sources.s]\ntitle = 't'\nurl = 'u'\nas_of = 2026-01-01\n"
            "[[prices]]\nmodel = 'm'\nmode = 'batch'\nprompt = '1'\nsource = 's'",
            "mode",
        ),
        (
            "provider = 'p'\n[sources.s]\ntitle = 't'\nurl = 'u'\nas_of = 2026-01-01\n"
            "[[prices]]\nmodel = 'm'\nsource = 's'",
            "prompt and/or completion",
        ),
        ("provider = ", "not valid TOML"),
    ],
)
def test_a_bad_list_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"bad\.toml") as info:
        parse_price_list(text, "bad.toml")
    assert message in str(info.value)


@given(st.decimals(min_value=0, max_value=1000, places=4))
def test_listed_figures_survive_the_round_trip(figure: Decimal) -> None:
    text = LIST.replace('prompt = "0.20"', f'prompt = "{figure}"', 1)
    price = find_price(parse_price_list(text), "acme-lite")
    assert price is not None and price.prompt == figure


def test_describe_lists_every_figure_with_source_and_date(prices: PriceList) -> None:
    report = describe_prices(prices)
    assert len(report["prices"]) == 5
    lite = report["prices"][0]
    assert lite["url"] == "https://acme.example/pricing" and lite["as_of"] == "2026-03-16"
    assert lite["cached"] == "0.10" and lite["prompt"] == "0.20"
    assert report["prices"][4]["model"] is None  # listed without a model id
    plain = describe_prices({"m": Price(1, 2)})
    assert plain["prices"][0]["source"] is None and plain["prices"][0]["prompt"] == "1"
