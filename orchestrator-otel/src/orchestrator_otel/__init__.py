"""OpenTelemetry GenAI traces and metrics, and a Prometheus endpoint, for the orchestrator.

Installed, this distribution's entry point registers :data:`PLUGIN` (which implements the
router's lifecycle hooks) with every plugin registry once telemetry is on:

- :func:`configure` turns it on: the global OpenTelemetry providers, or the providers and/or
  Prometheus exporter (:class:`orchestrator_otel.prometheus.PrometheusExporter`) it names;
- a global OpenTelemetry SDK installed before the first router is built turns it on too
  (``opentelemetry-instrument`` installs one before the application starts).

Until then the entry point registers a dormant object without hooks: the router's lifecycle
hooks stay off and cost nothing.

Message content is never recorded unless opted in. See ``docs/observability.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator_otel._plugin import (
    OrchestratorTelemetry,
    _global_providers_set,
    error_type,
    provider_system,
)
from orchestrator_otel._semconv import DURATION_BUCKETS, TOKEN_BUCKETS
from orchestrator_otel._watch import watch

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from orchestrator.plugins import PluginRegistry
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

#: The telemetry plugin of the process (what :func:`configure` configures and registers).
PLUGIN = OrchestratorTelemetry()
_configured = False


class _Dormant:
    """What the entry point registers while telemetry is not configured: no hooks, so the
    router's lifecycle hooks stay off and cost nothing."""

    def __repr__(self) -> str:
        return "<orchestrator-otel: installed, not configured>"


_DORMANT = _Dormant()


def __getattr__(name: str) -> object:
    # ``ENTRY`` is what the entry point (``orchestrator_otel:ENTRY``) loads when a registry
    # loads its plugins: the plugin itself once telemetry is configured, or when the
    # application already installed a global OpenTelemetry SDK (``opentelemetry-instrument``
    # does so before the application runs); else a dormant object without hooks.
    if name == "ENTRY":
        return PLUGIN if _configured or _global_providers_set() else _DORMANT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    prometheus: PrometheusExporter | None = None,
    capture_content: bool | None = None,
    latest: bool | None = None,
    registry: PluginRegistry | None = None,
) -> OrchestratorTelemetry:
    """Configure the process's telemetry plugin (:data:`PLUGIN`), register it with
    ``registry`` (default: the one every ``Router()`` uses) and return it.

    Every argument left out returns to its default: the global providers, no Prometheus,
    content per ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, conventions per
    ``OTEL_SEMCONV_STABILITY_OPT_IN``. See :class:`OrchestratorTelemetry`. Until it is
    called (or a global SDK is installed before the first router), the plugin costs nothing.
    """
    global _configured
    _configured = True
    PLUGIN.configure(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        prometheus=prometheus,
        capture_content=capture_content,
        latest=latest,
    )
    if registry is None:
        from orchestrator.plugins import default_registry

        registry = default_registry()
    registry.load()  # loading the entry point registers PLUGIN now (_configured is set)
    if PLUGIN not in registry.plugin_manager.get_plugins():
        registry.register_plugin(PLUGIN, name="otel")
    return PLUGIN
