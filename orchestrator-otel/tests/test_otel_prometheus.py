"""The Prometheus exporter: scraped over real HTTP on loopback and parsed with
prometheus_client's own parser; mounted as ASGI and WSGI apps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from orchestrator.pricing import Price
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.testing import LoopbackServer
from orchestrator_otel import watch
from orchestrator_otel.prometheus import DEFAULT_HOST, PrometheusExporter

from .conftest import Telemetry

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
LE = ["0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64", "1.28", "2.56", "5.12", "10.24",
      "20.48", "40.96", "81.92", "+Inf"]  # fmt: skip


def parse(text: str) -> dict[str, list[Sample]]:
    """Family name -> its samples."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def only(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


async def test_scrape_over_http(
    make_telemetry: Any, make_provider: Any, server: LoopbackServer, emulator: Any
) -> None:
    telemetry: Telemetry = make_telemetry(prometheus=True)
    exporter = telemetry.prometheus
    assert exporter is not None
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    router.add_provider(make_provider("backup"))
    emulator.fail_next(503)
    async with router:
        first = await router.chat("Hello")  # fails over to backup
        second = await router.chat("Hello again")  # primary answers
    assert (first.provider, second.provider) == ("backup", "primary")

    http_server, thread = exporter.start_http_server(port=0)
    try:
        assert http_server.server_address[0] == DEFAULT_HOST == "127.0.0.1"
        url = f"http://127.0.0.1:{http_server.server_port}/metrics"
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
    finally:
        http_server.shutdown()
        http_server.server_close()
        thread.join(5)
    assert response.status_code == 200
    families = parse(response.text)

    duration = families["gen_ai_client_operation_duration_seconds"]
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": MODEL,
        "server_address": "127.0.0.1",
        "server_port": str(server.port),
    }
    ok = {**labels, "gen_ai_response_model": MODEL, "error_type": ""}
    failed = {**labels, "gen_ai_response_model": "", "error_type": "ServiceUnavailableError"}
    counts = {
        s.labels["orchestrator_provider"] + "/" + s.labels["error_type"]: s.value
        for s in duration
        if s.name.endswith("_count")
    }
    assert counts == {"primary/ServiceUnavailableError": 1, "backup/": 1, "primary/": 1}
    buckets = only(duration, "gen_ai_client_operation_duration_seconds_bucket", **ok)
    assert [b.labels["le"] for b in buckets if b.labels["orchestrator_provider"] == "backup"] == LE
    assert only(duration, "gen_ai_client_operation_duration_seconds_count", **failed)[0].labels == {
        **failed,
        "orchestrator_provider": "primary",
    }
    # Real histograms: each observation lands in its bucket; +Inf counts them all.
    backup_inf = only(
        duration,
        "gen_ai_client_operation_duration_seconds_bucket",
        orchestrator_provider="backup",
        le="+Inf",
    )
    assert [s.value for s in backup_inf] == [1.0]

    tokens = families["gen_ai_client_token_usage"]
    sums = {
        (s.labels["orchestrator_provider"], s.labels["gen_ai_token_type"]): s.value
        for s in tokens
        if s.name == "gen_ai_client_token_usage_sum"
    }
    assert first.usage is not None and second.usage is not None
    assert sums == {
        ("backup", "input"): first.usage.prompt_tokens,
        ("backup", "output"): first.usage.completion_tokens,
        ("primary", "input"): second.usage.prompt_tokens,
        ("primary", "output"): second.usage.completion_tokens,
    }
    token_le = [
        s.labels["le"]
        for s in only(tokens, "gen_ai_client_token_usage_bucket", gen_ai_token_type="input")
        if s.labels["orchestrator_provider"] == "backup"
    ]
    assert token_le[-2:] == ["6.7108864e+07", "+Inf"]

    attempts = {
        (s.labels["orchestrator_provider"], s.labels["orchestrator_outcome"]): s.value
        for s in families["orchestrator_attempts"]
        if s.name == "orchestrator_attempts_total"
    }
    assert attempts == {("primary", "error"): 1, ("backup", "ok"): 1, ("primary", "ok"): 1}
    [fallback] = only(families["orchestrator_fallbacks"], "orchestrator_fallbacks_total")
    assert fallback.labels == {
        "orchestrator_provider": "primary",
        "error_type": "ServiceUnavailableError",
    }
    assert fallback.value == 1
    requests = only(
        families["orchestrator_request_duration_seconds"],
        "orchestrator_request_duration_seconds_count",
    )
    assert [(s.labels, s.value) for s in requests] == [
        (
            {"orchestrator_request_kind": "chat", "orchestrator_outcome": "ok", "error_type": ""},
            2.0,
        )
    ]
    states = {
        s.labels["orchestrator_provider"]: s.value
        for s in families["orchestrator_breaker_state"]
        if s.labels["orchestrator_provider"] in ("primary", "backup")
    }
    assert states == {"primary": 0, "backup": 0}


async def test_cost_budget_and_breaker(make_telemetry: Any) -> None:
    telemetry: Telemetry = make_telemetry(prometheus=True)
    exporter = telemetry.prometheus
    assert exporter is not None
    router = telemetry.router(prices={"priced-m": {"mock-1": Price("1", "2")}}, budget="100")
    router.add_provider(MockProvider(MockConfig(name="priced-m")), budget=Decimal("10"))
    router.add_provider(MockProvider(MockConfig(name="down-m", mode="auth_error")))
    watch(router, "priced-router")
    completion = await router.chat("one two three", provider="priced-m")
    assert completion.cost is not None and completion.cost > 0
    cost = float(completion.cost)
    spent = float(router.stats()["providers"]["priced-m"]["cost"])
    assert spent == cost

    body, content_type = exporter.exposition()
    assert content_type.startswith("text/plain")
    families = parse(body.decode())
    [spent_sample] = only(families["orchestrator_cost_rub"], "orchestrator_cost_rub_total")
    assert spent_sample.labels == {
        "orchestrator_provider": "priced-m",
        "gen_ai_provider_name": "mock",
        "gen_ai_response_model": "mock-1",
    }
    assert spent_sample.value == pytest.approx(cost)
    budgets = {
        s.labels["orchestrator_provider"]: s.value
        for s in families["orchestrator_budget_remaining_rub"]
    }
    assert budgets["priced-m"] == pytest.approx(10 - cost)
    assert "down-m" not in budgets  # no budget of its own
    routers = {
        s.labels["orchestrator_router"]: s.value
        for s in families["orchestrator_router_budget_remaining_rub"]
    }
    assert routers["priced-router"] == pytest.approx(100 - cost)

    # The OTel side reports the same.
    [(attributes, counted)] = telemetry.points("orchestrator.cost")
    assert attributes == {
        "orchestrator.provider": "priced-m",
        "gen_ai.provider.name": "mock",
        "gen_ai.response.model": "mock-1",
    }
    assert counted.value == pytest.approx(cost)
    assert dict(telemetry.span("chat mock-1").attributes or {})["orchestrator.cost"] == cost
    budget_points = {a["orchestrator.provider"]: p.value for a, p in telemetry.points(
        "orchestrator.budget.remaining"
    )}  # fmt: skip
    assert budget_points["priced-m"] == pytest.approx(10 - cost)
    router_points = {a["orchestrator.router"]: p.value for a, p in telemetry.points(
        "orchestrator.router.budget.remaining"
    )}  # fmt: skip
    assert router_points["priced-router"] == pytest.approx(100 - cost)

    # A provider that keeps failing opens its breaker: the gauge says 2.
    for _ in range(10):
        if router.get_provider("down-m") and router.slots[1].breaker.state == "open":
            break
        with pytest.raises(Exception, match="authentication"):
            await router.chat("x", provider="down-m")
    assert router.slots[1].breaker.state == "open"
    states = {a["orchestrator.provider"]: p.value for a, p in telemetry.points(
        "orchestrator.breaker.state"
    )}  # fmt: skip
    assert (states["priced-m"], states["down-m"]) == (0, 2)
    families = parse(exporter.exposition()[0].decode())
    prom_states = {
        s.labels["orchestrator_provider"]: s.value for s in families["orchestrator_breaker_state"]
    }
    assert (prom_states["priced-m"], prom_states["down-m"]) == (0, 2)


async def test_asgi_and_wsgi_apps(make_telemetry: Any) -> None:
    telemetry: Telemetry = make_telemetry(prometheus=True)
    exporter = telemetry.prometheus
    assert exporter is not None
    router = telemetry.router()
    router.add_provider(MockProvider(MockConfig(name="m")))
    await router.chat("hello")

    # Called as an ASGI server calls it (httpx's ASGITransport leaves a generator to the
    # garbage collector on trio).
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
             "headers": []}  # fmt: skip
    await exporter.asgi_app()(scope, receive, send)
    assert sent[0]["status"] == 200
    assert b"gen_ai_client_operation_duration_seconds_bucket" in sent[1]["body"]

    with httpx.Client(transport=httpx.WSGITransport(app=exporter.wsgi_app())) as client:
        again = client.get("http://app/metrics")
    assert again.status_code == 200
    families = parse(again.text)
    [count] = only(
        families["gen_ai_client_operation_duration_seconds"],
        "gen_ai_client_operation_duration_seconds_count",
        orchestrator_provider="m",
    )
    assert count.value == 1


def test_exporter_on_the_global_registry() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    exporter = PrometheusExporter(registry)
    assert exporter.registry is registry
    exporter.record_request("chat", "ok", "", 0.5)
    body, _ = exporter.exposition("text/plain")
    assert b'orchestrator_request_duration_seconds_bucket{error_type="",le="0.64"' in body


async def test_a_retried_stream_with_a_per_request_model(
    make_telemetry: Any, make_provider: Any, server: LoopbackServer, emulator: Any
) -> None:
    telemetry: Telemetry = make_telemetry(prometheus=True)
    exporter = telemetry.prometheus
    assert exporter is not None
    router = telemetry.router()
    router.add_provider(make_provider("primary", max_retries=1))
    emulator.fail_next(500)
    async with router:
        chunks = [c async for c in router.chat_stream("Hi", {"model": "gpt-4o"})]
    assert chunks[-1].model == "gpt-4o"
    request = telemetry.span("orchestrator.stream")
    assert dict(request.attributes or {})["gen_ai.request.model"] == "gpt-4o"
    assert [s.name for s in telemetry.spans()].count("chat gpt-4o") == 2

    families = parse(exporter.exposition()[0].decode())
    [retry] = only(families["orchestrator_retries"], "orchestrator_retries_total")
    assert retry.labels == {
        "orchestrator_provider": "primary",
        "error_type": "ServiceUnavailableError",
    }
    [first] = only(
        families["gen_ai_client_operation_time_to_first_chunk_seconds"],
        "gen_ai_client_operation_time_to_first_chunk_seconds_count",
    )
    assert first.labels["gen_ai_request_model"] == "gpt-4o"
    assert first.labels["gen_ai_response_model"] == "gpt-4o"
    assert first.value == 1
