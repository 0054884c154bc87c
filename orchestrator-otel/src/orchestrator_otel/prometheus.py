"""The same metrics as Prometheus series, with ``prometheus_client``.

Every attempt is observed on its own into real histograms (never an average), with the
GenAI conventions' bucket boundaries: up to 81.92 s for durations (``prometheus_client``'s
defaults stop at 10 s, where an LLM answer often is not done yet) and up to 67,108,864 for
tokens. Names are what the OpenTelemetry Collector's Prometheus translation gives for the
OTel metrics (dots become ``_``, ``s`` becomes ``_seconds``, counters end in ``_total``), so
dashboards work with either path.

Serve them from your own app (:meth:`PrometheusExporter.wsgi_app`,
:meth:`~PrometheusExporter.asgi_app`, :meth:`~PrometheusExporter.exposition`), or on a port
of their own with :meth:`~PrometheusExporter.start_http_server`, bound to 127.0.0.1 unless
you say otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    exposition,
    make_asgi_app,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator_otel import _semconv as sc
from orchestrator_otel._watch import WATCHED, Watched

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "PrometheusExporter"]

#: Loopback only: metrics name your providers and models; expose them on purpose.
DEFAULT_HOST = "127.0.0.1"
#: The port OpenTelemetry's Prometheus exporter uses by default.
DEFAULT_PORT = 9464

#: OTel attribute -> Prometheus label, for the per-attempt (GenAI) histograms.
_ATTEMPT_LABELS = {
    sc.OPERATION_NAME: "gen_ai_operation_name",
    sc.PROVIDER_NAME: "gen_ai_provider_name",
    sc.REQUEST_MODEL: "gen_ai_request_model",
    sc.RESPONSE_MODEL: "gen_ai_response_model",
    sc.SERVER_ADDRESS: "server_address",
    sc.SERVER_PORT: "server_port",
    sc.ERROR_TYPE: "error_type",
    "orchestrator.provider": "orchestrator_provider",
}


class _StateCollector(Collector):
    """Breaker states and budgets left, read when scraped."""

    def __init__(self, watched: Watched) -> None:
        self.watched = watched

    def collect(self) -> Iterable[Metric]:
        breaker = GaugeMetricFamily(
            "orchestrator_breaker_state",
            "Circuit breaker of each provider: 0 closed, 1 half-open, 2 open.",
            labels=["orchestrator_provider"],
        )
        for name, state in sorted(self.watched.breaker_states().items()):
            breaker.add_metric([name], state)
        budget = GaugeMetricFamily(
            "orchestrator_budget_remaining_rub",
            "Roubles left of each provider's budget (providers with a budget).",
            labels=["orchestrator_provider"],
        )
        for name, left in sorted(self.watched.provider_budgets().items()):
            budget.add_metric([name], left)
        router_budget = GaugeMetricFamily(
            "orchestrator_router_budget_remaining_rub",
            "Roubles left of a watched router's budget.",
            labels=["orchestrator_router"],
        )
        for name, left in sorted(self.watched.router_budgets().items()):
            router_budget.add_metric([name], left)
        return [breaker, budget, router_budget]

    def describe(self) -> Iterable[Metric]:
        return []  # the series are known only when scraped


class PrometheusExporter:
    """Prometheus histograms, counters and gauges for the router's requests.

    Give it to :func:`orchestrator_otel.configure` (``configure(prometheus=exporter)``) so
    the plugin feeds it, then serve :attr:`registry`. ``registry``: where the series live
    (default: a registry of its own, so nothing else in the process leaks into the scrape;
    pass ``prometheus_client.REGISTRY`` to share the global one).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        labels = list(_ATTEMPT_LABELS.values())
        r = self.registry
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of each GenAI operation (one attempt on one provider).",
            labels,
            buckets=sc.DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from the start of a streaming attempt to its first text.",
            labels,
            buckets=sc.DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used by each attempt, by gen_ai_token_type (input, output).",
            [*labels, "gen_ai_token_type"],
            buckets=sc.TOKEN_BUCKETS,
            registry=r,
        )
        self.request_duration = Histogram(
            "orchestrator_request_duration_seconds",
            "Duration of each routed request, across its retries and failovers.",
            ["orchestrator_request_kind", "orchestrator_outcome", "error_type"],
            buckets=sc.DURATION_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "orchestrator_attempts",
            "Attempts made on each provider, by outcome (ok, error, cancelled).",
            ["orchestrator_provider", "gen_ai_provider_name", "orchestrator_outcome", "error_type"],
            registry=r,
        )
        self.retries = Counter(
            "orchestrator_retries",
            "Retries of the same provider after a transient error.",
            ["orchestrator_provider", "error_type"],
            registry=r,
        )
        self.fallbacks = Counter(
            "orchestrator_fallbacks",
            "Failovers from a provider to the next one.",
            ["orchestrator_provider", "error_type"],
            registry=r,
        )
        self.cost = Counter(
            "orchestrator_cost_rub",
            "Roubles spent, by provider and model (where a price is known).",
            ["orchestrator_provider", "gen_ai_provider_name", "gen_ai_response_model"],
            registry=r,
        )
        r.register(_StateCollector(WATCHED))

    # -- fed by the plugin ------------------------------------------------------------------

    def record_attempt(
        self,
        attributes: Mapping[str, Any],
        system: str,
        outcome: str,
        duration: float | None,
        time_to_first_chunk: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost: float | None = None,
    ) -> None:
        """One attempt ended (``duration`` None: it was cancelled, not timed)."""
        values = [str(attributes.get(key, "")) for key in _ATTEMPT_LABELS]
        values[1] = system  # gen_ai_provider_name, whichever convention the spans follow
        if duration is not None:
            self.duration.labels(*values).observe(duration)
            if time_to_first_chunk is not None:
                self.time_to_first_chunk.labels(*values).observe(time_to_first_chunk)
        if input_tokens is not None:
            self.tokens.labels(*values, "input").observe(input_tokens)
        if output_tokens is not None:
            self.tokens.labels(*values, "output").observe(output_tokens)
        provider = values[-1]
        self.attempts.labels(provider, system, outcome, values[6]).inc()
        if cost is not None:
            model = values[3] or values[2]  # response model, else request model
            self.cost.labels(provider, system, model).inc(cost)

    def record_retry(self, provider: str, error_type: str) -> None:
        self.retries.labels(provider, error_type).inc()

    def record_fallback(self, provider: str, error_type: str) -> None:
        self.fallbacks.labels(provider, error_type).inc()

    def record_request(self, kind: str, outcome: str, error_type: str, duration: float) -> None:
        self.request_duration.labels(kind, outcome, error_type).observe(duration)

    # -- serving ----------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its Content-Type (negotiated from an ``Accept`` header)."""
        encoder, content_type = exposition.choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def wsgi_app(self) -> Callable[..., Any]:
        """A WSGI app serving the metrics (mount it at ``/metrics`` in Flask, Django...)."""
        return make_wsgi_app(self.registry)

    def asgi_app(self) -> Callable[..., Any]:
        """An ASGI app serving the metrics (``app.mount("/metrics", ...)`` in Starlette,
        FastAPI...)."""
        return make_asgi_app(self.registry)

    def start_http_server(
        self, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST
    ) -> tuple[WSGIServer, threading.Thread]:
        """Serve ``/metrics`` from a daemon thread on ``host:port`` (port 0: a free one; read
        ``server.server_port``). Stop it with ``server.shutdown(); server.server_close()``."""
        from prometheus_client import start_http_server

        return start_http_server(port, addr=host, registry=self.registry)
