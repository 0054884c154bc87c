"""Fixtures: an OpenAI emulator on loopback, and a router whose registry holds one
OrchestratorTelemetry wired to the OTel SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator import Router
from orchestrator.plugins import PluginRegistry
from orchestrator.testing import LoopbackServer
from orchestrator_openai import OpenAIProvider
from orchestrator_openai.emulator import OpenAIEmulator, config_for
from orchestrator_otel import OrchestratorTelemetry
from orchestrator_otel.prometheus import PrometheusExporter


@pytest.fixture(scope="module")
def emulator() -> OpenAIEmulator:
    return OpenAIEmulator()


@pytest.fixture(scope="module")
def server(emulator: OpenAIEmulator) -> Iterator[LoopbackServer]:
    with LoopbackServer(emulator) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_emulator(request: pytest.FixtureRequest) -> None:
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests choose the conventions and content capture themselves."""
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)


@dataclass
class Telemetry:
    """What a test reads: finished spans and collected metric points."""

    plugin: OrchestratorTelemetry
    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    registry: PluginRegistry
    prometheus: PrometheusExporter | None
    sleeps: list[float] = field(default_factory=list)

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, [s.name for s in self.spans()]
        return found[0]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of ``metric`` collected now."""
        data = self.reader.get_metrics_data()
        found = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend((dict(p.attributes or {}), p) for p in m.data.data_points)
        return found

    def router(self, **options: Any) -> Router:
        async def sleep(seconds: float) -> None:  # backoff waits, recorded not slept
            self.sleeps.append(seconds)

        options.setdefault("strategy", "first-available")
        return Router(registry=self.registry, sleep=sleep, **options)


@pytest.fixture
def make_telemetry() -> Callable[..., Telemetry]:
    def make(*, prometheus: bool = False, **options: Any) -> Telemetry:
        spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        exporter = PrometheusExporter() if prometheus else None
        options.setdefault("latest", True)
        plugin = OrchestratorTelemetry(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            prometheus=exporter,
            **options,
        )
        registry = PluginRegistry(entry_points=False)
        registry.register_plugin(plugin, name="otel-test")
        return Telemetry(plugin, spans, reader, registry, exporter)

    return make


@pytest.fixture
def telemetry(make_telemetry: Callable[..., Telemetry]) -> Telemetry:
    return make_telemetry()


@pytest.fixture
def make_provider(server: LoopbackServer) -> Callable[..., OpenAIProvider]:
    # The providers stay referenced (by `made`) until the test's fixtures are torn down.
    made: list[OpenAIProvider] = []

    def make(name: str = "openai", **overrides: Any) -> OpenAIProvider:
        overrides.setdefault("max_retries", 0)
        made.append(OpenAIProvider(config_for(server, name=name, **overrides)))
        return made[-1]

    return make
