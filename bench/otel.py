"""The telemetry row: what the orchestrator-otel plugin adds to a call through the toy Router
(an in-process provider, so the plugin's share is not lost in HTTP noise).

Routers over the same provider, timed interleaved against one without any plugin: with the
plugin installed but not configured (its entry point registers a dormant object: what a user
who installed it and configured nothing pays), configured with no OpenTelemetry SDK (the
lifecycle hooks run, nothing is recorded: the price of the hook relay), and recording into
the OTel SDK (spans built without an exporter, metrics into an in-memory reader).
"""

from __future__ import annotations

from _common import Spread, Table, interleaved
from toy import InProcess

from orchestrator import Router
from orchestrator.plugins import PluginRegistry
from orchestrator.providers import ProviderConfig
from orchestrator.types import Message

#: The issue's bound for the installed-but-unconfigured plugin ("a few microseconds").
TARGET_US = 5.0


def _router(plugin: object | None) -> Router:
    registry = PluginRegistry(entry_points=False)
    if plugin is not None:
        registry.register_plugin(plugin, name="otel")
    router = Router(registry=registry)
    router.add_provider(InProcess(ProviderConfig(name="inproc")))
    return router


def _recording() -> object:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from orchestrator_otel import OrchestratorTelemetry

    return OrchestratorTelemetry(
        tracer_provider=TracerProvider(),  # no span processor: spans are built, not exported
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        latest=True,
    )


async def measure(n: int, rounds: int) -> dict[str, Spread] | None:
    """Router cost added by the plugin (µs, p50), or None when it is not installed."""
    try:
        from orchestrator_otel import OrchestratorTelemetry
    except ImportError:
        return None
    import orchestrator_otel

    plain, dormant = _router(None), _router(orchestrator_otel._DORMANT)
    idle = _router(OrchestratorTelemetry())
    try:
        recording = _router(_recording())
    except ImportError:  # the SDK is optional: only the unconfigured row then
        recording = None
    one = (Message("user", "hi"),)

    async def drain(router: Router) -> None:
        async for _ in router.chat_stream(one):
            pass

    InProcess.chunks = 10
    names = ("dormant", "idle", "recording")
    out = {k: Spread() for name in names for k in (name, f"{name}_stream")}
    variants = {
        "plain": lambda: plain.chat(one),
        "dormant": lambda: dormant.chat(one),
        "idle": lambda: idle.chat(one),
    }
    streams = {
        "plain": lambda: drain(plain),
        "dormant": lambda: drain(dormant),
        "idle": lambda: drain(idle),
    }
    if recording is not None:
        variants["recording"] = lambda: recording.chat(one)
        streams["recording"] = lambda: drain(recording)
    try:
        for _ in range(rounds):
            t = await interleaved(variants, n, warmup=n // 10)
            s = await interleaved(streams, max(10, n // 4), warmup=10)
            for name in names:
                if name in t:
                    out[name].add(t[name].p50 - t["plain"].p50)
                    out[f"{name}_stream"].add(s[name].p50 - s["plain"].p50)
    finally:
        InProcess.chunks = 1000
    return out


def table(results: dict[str, Spread] | None) -> Table:
    out = Table(
        "orchestrator-otel: added to a call through the toy Router (µs, p50)",
        ["call", "stream (10 chunks)"],
        note="Against the same Router without the plugin, timed interleaved; median of "
        "rounds, min … max. Not installed or not configured: the lifecycle hooks are off. "
        "Configured without an SDK: mostly the router's hook relay (any hook plugin pays it). "
        "A few µs either side of 0 is the noise of the method.",
    )
    if results is None:
        out.add("orchestrator-otel not installed", "—", "—")
        return out
    dormant = results["dormant"]
    out.add(
        "installed, not configured",
        dormant.text(),
        results["dormant_stream"].text(),
        target=f"≤ {TARGET_US:g} µs",
        ok=dormant.median <= TARGET_US,
    )
    out.add(
        "configured, no OpenTelemetry SDK (hooks run, nothing recorded)",
        results["idle"].text(),
        results["idle_stream"].text(),
    )
    if results["recording"].values:
        out.add(
            "recording into the OTel SDK (spans built, metrics aggregated)",
            results["recording"].text(),
            results["recording_stream"].text(),
        )
    return out
