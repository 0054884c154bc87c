"""`orchestrator prices`: every shipped figure with its source and date, text and JSON."""

from __future__ import annotations

import json

import pytest

from orchestrator import cli
from orchestrator.pricing import PriceList
from orchestrator_gigachat import GigaChatProvider
from orchestrator_yandexgpt import YandexGPTProvider


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_text_lists_every_figure_with_source_and_date(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "prices")
    assert code == 0 and not err
    shipped = YandexGPTProvider.prices
    assert isinstance(shipped, PriceList)
    lines = out.splitlines()
    for entry in shipped.entries:
        row = next(
            (line for line in lines if f" {entry.name} " in line and f" {entry.mode} " in line),
            None,
        )
        assert row is not None, f"{entry.name} ({entry.mode}) is missing:\n{out}"
        assert str(entry.prompt) in row and entry.source.as_of.isoformat() in row
        assert f"[{entry.source.key}]" in row
        assert entry.source.url in out
    assert "gigachat (orchestrator-gigachat" in out and "no list prices" in out
    assert "mock (built-in): no list prices" in out
    assert "[providers.<name>.prices.MODEL]" in out


def test_json_has_every_figure_and_the_missing_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices", "--json", "yandexgpt", "gigachat")
    assert code == 0
    reports = {r["provider"]: r for r in json.loads(out)["providers"]}
    assert list(reports) == ["yandexgpt", "gigachat"]
    yandex = reports["yandexgpt"]
    assert len(yandex["prices"]) == len(YandexGPTProvider.prices.entries)
    lite = next(p for p in yandex["prices"] if p["model"] == "yandexgpt-lite")
    assert lite["prompt"] == "0.20" and lite["as_of"] == "2026-03-16"
    assert lite["url"] == "https://aistudio.yandex.ru/docs/ru/ai-studio/pricing.html"
    giga = reports["gigachat"]
    assert giga["prices"] == [] and "GigaChat-2" in giga["unpriced"]
    assert giga["missing"] == GigaChatProvider.prices.missing


def test_an_unknown_provider_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "prices", "nosuch")
    assert code == 2 and not out
    assert err.startswith("error:") and "nosuch" in err and "yandexgpt" in err
