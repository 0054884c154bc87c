"""OpenTelemetry GenAI traces and metrics, and a Prometheus endpoint, for the orchestrator.

Installed, this distribution registers :data:`PLUGIN` through the plugin entry point; it
implements the router's lifecycle hooks and records nothing until telemetry is configured:

- global OpenTelemetry providers (an SDK, ``opentelemetry-instrument``) are used as soon as
  the application installs them; or
- :func:`configure` names providers and/or a Prometheus exporter
  (:class:`orchestrator_otel.prometheus.PrometheusExporter`).

Message content is never recorded unless opted in. See ``docs/observability.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator_otel._plugin import OrchestratorTelemetry, error_type, provider_system
from orchestrator_otel._semconv import DURATION_BUCKETS, TOKEN_BUCKETS
from orchestrator_otel._watch import watch

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from orchestrator_otel.prometheus import PrometheusExporter

__all__ = [
    "DURATION_BUCKETS",
    "PLUGIN",
    "TOKEN_BUCKETS",
    "OrchestratorTelemetry",
    "configure",
    "error_type",
    "provider_system",
    "watch",
]

#: The instance the entry point registers (``orchestrator_otel:PLUGIN``).
PLUGIN = OrchestratorTelemetry()


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    prometheus: PrometheusExporter | None = None,
    capture_content: bool | None = None,
    latest: bool | None = None,
) -> OrchestratorTelemetry:
    """Configure the installed plugin (:data:`PLUGIN`) and return it.

    Every argument left out returns to its default: the global providers, no Prometheus,
    content per ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, conventions per
    ``OTEL_SEMCONV_STABILITY_OPT_IN``. See :class:`OrchestratorTelemetry`.
    """
    return PLUGIN.configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        prometheus=prometheus,
        capture_content=capture_content,
        latest=latest,
    )
