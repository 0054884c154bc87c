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

import os
import sys
from typing import TYPE_CHECKING, Any

from orchestrator.lazy import lazy_exports

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from orchestrator.plugins import PluginRegistry
    from orchestrator_otel._plugin import OrchestratorTelemetry, error_type, provider_system
    from orchestrator_otel._semconv import DURATION_BUCKETS, TOKEN_BUCKETS
    from orchestrator_otel._watch import watch
    from orchestrator_otel.prometheus import PrometheusExporter

    #: The telemetry plugin of the process (what :func:`configure` configures and registers).
    PLUGIN: OrchestratorTelemetry

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

# Imported on first use: the entry point is loaded by every plugin registry (and by
# `orchestrator providers`), and while telemetry is off it must not import OpenTelemetry.
_LAZY = {
    "OrchestratorTelemetry": "orchestrator_otel._plugin",
    "error_type": "orchestrator_otel._plugin",
    "provider_system": "orchestrator_otel._plugin",
    "DURATION_BUCKETS": "orchestrator_otel._semconv",
    "TOKEN_BUCKETS": "orchestrator_otel._semconv",
    "watch": "orchestrator_otel._watch",
}
_lazy = lazy_exports(__name__, _LAZY)

_configured = False


class _Dormant:
    """What the entry point registers while telemetry is not configured: no hooks, so the
    router's lifecycle hooks stay off and cost nothing."""

    def __repr__(self) -> str:
        return "<orchestrator-otel: installed, not configured>"


_DORMANT = _Dormant()


def _the_plugin() -> OrchestratorTelemetry:
    """:data:`PLUGIN`, created on first use."""
    plugin = globals().get("PLUGIN")
    if plugin is None:
        from orchestrator_otel._plugin import OrchestratorTelemetry

        plugin = globals().setdefault("PLUGIN", OrchestratorTelemetry())
    return plugin  # type: ignore[no-any-return]


def _global_providers_set() -> bool:
    """Whether the application installed a global tracer or meter provider. Only
    OpenTelemetry's API can hold one: while it is not imported (and no environment variable
    names a provider for it to load) none is installed, and it is not imported here."""
    if not (
        "opentelemetry.trace" in sys.modules
        or "opentelemetry.metrics" in sys.modules
        or "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
        or "OTEL_PYTHON_METER_PROVIDER" in os.environ
    ):
        return False
    from orchestrator_otel import _plugin as plugin_module

    return plugin_module._global_providers_set()


def __getattr__(name: str) -> Any:
    # ``ENTRY`` is what the entry point (``orchestrator_otel:ENTRY``) loads when a registry
    # loads its plugins: the plugin itself once telemetry is configured, or when the
    # application already installed a global OpenTelemetry SDK (``opentelemetry-instrument``
    # does so before the application runs); else a dormant object without hooks.
    if name == "ENTRY":
        return _the_plugin() if _configured or _global_providers_set() else _DORMANT
    if name == "PLUGIN":
        return _the_plugin()
    return _lazy(name)


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
    plugin = _the_plugin()
    plugin.configure(
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
    if plugin not in registry.plugin_manager.get_plugins():
        registry.register_plugin(plugin, name="otel")
    return plugin
