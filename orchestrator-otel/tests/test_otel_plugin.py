"""The plugin's registration, its do-nothing state, cancelled attempts and its helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

import orchestrator_otel
from orchestrator import Router
from orchestrator.errors import RateLimitError
from orchestrator.events import RequestInfo
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.base import BaseProvider
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.types import Completion, Message
from orchestrator_otel import OrchestratorTelemetry, _plugin, _semconv, error_type, provider_system
from orchestrator_otel.prometheus import PrometheusExporter

from .conftest import Telemetry


def registered(registry: PluginRegistry) -> list[object]:
    """What orchestrator-otel registered there: the plugin, or its dormant stand-in."""
    ours = (orchestrator_otel.PLUGIN, orchestrator_otel._DORMANT)
    return [p for p in registry.plugin_manager.get_plugins() if p in ours]


def test_installed_but_not_configured_costs_nothing() -> None:
    """The entry point registers a dormant object: no lifecycle hook is implemented, so the
    router does not even build the hook relay."""
    registry = PluginRegistry()
    registry.load()
    assert not registry.failures
    [dormant] = registered(registry)
    assert dormant is not orchestrator_otel.PLUGIN
    assert repr(dormant) == "<orchestrator-otel: installed, not configured>"
    assert Router(registry=registry)._lifecycle() is None


def test_loading_the_dormant_entry_point_imports_no_opentelemetry() -> None:
    """Every registry loads the entry point (``orchestrator providers`` too): while
    telemetry is off it stays dormant without importing OpenTelemetry; a provider named in
    the environment is still found."""
    code = (
        "import sys; from orchestrator.plugins import PluginRegistry; "
        "r = PluginRegistry(); r.load(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'opentelemetry'}), "
        "[repr(p) for p in r.plugin_manager.get_plugins() if 'otel' in repr(p)])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_PYTHON_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == "[] ['<orchestrator-otel: installed, not configured>']"
    env["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.startswith("['opentelemetry'] ") and "not configured" not in out


def test_a_global_sdk_installed_first_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: TracerProvider())
    registry = PluginRegistry()
    registry.load()
    assert registered(registry) == [orchestrator_otel.PLUGIN]
    assert Router(registry=registry)._lifecycle() is not None


def test_configure_registers_and_replaces_the_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orchestrator_otel, "_configured", False)  # restored afterwards
    registry = PluginRegistry()
    exporter = PrometheusExporter()
    try:
        plugin = orchestrator_otel.configure(prometheus=exporter, registry=registry)
        assert plugin is orchestrator_otel.PLUGIN
        assert plugin.prometheus is exporter
        assert registered(registry) == [plugin]  # loaded by the entry point, once
        orchestrator_otel.configure(registry=registry)  # again: still registered once
        assert registered(registry) == [plugin]
        assert plugin.prometheus is None
        late = PluginRegistry(entry_points=False)  # no entry point: registered by hand
        orchestrator_otel.configure(registry=late)
        assert orchestrator_otel.PLUGIN in late.plugin_manager.get_plugins()
    finally:
        orchestrator_otel.PLUGIN.configure()


def test_configure_defaults_to_the_routers_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.plugins

    registry = PluginRegistry()
    monkeypatch.setattr(orchestrator.plugins, "default_registry", lambda: registry)
    monkeypatch.setattr(orchestrator_otel, "_configured", False)
    orchestrator_otel.configure()
    assert registered(registry) == [orchestrator_otel.PLUGIN]


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="NOPE"):
        orchestrator_otel.NOPE  # noqa: B018


def request_info(kind: Any = "chat") -> RequestInfo:
    return RequestInfo(1, kind, (Message("user", "hi"),), None, time.monotonic())


def test_without_providers_it_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """No explicit provider or exporter and no global SDK: every hook returns at once."""
    plugin = OrchestratorTelemetry()
    assert not _plugin._global_providers_set()
    request = request_info()
    plugin.on_request_start(request)
    assert plugin._requests == {}
    slot: Any = None  # never read: the request is unknown
    plugin.on_attempt_start(request, "m", 1, slot)
    plugin.on_stream_first_chunk(request, "m", 0.1)
    plugin.on_attempt_success(request, "m", 1, 0.2, Completion("x", "m"))
    plugin.on_attempt_error(request, "m", 1, 0.2, RateLimitError("x"))
    plugin.on_retry(request, "m", 1, 0.5, RateLimitError("x"))
    plugin.on_fallback(request, "m", RateLimitError("x"))
    plugin.on_request_end(request, None, None, "cancelled")
    assert plugin._requests == {}


def test_a_global_sdk_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = OrchestratorTelemetry()
    assert not plugin._active()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: TracerProvider())
    assert _plugin._global_providers_set()
    assert plugin._active()
    monkeypatch.undo()
    assert plugin._active()  # a global provider is never unset: the answer is kept


@pytest.mark.anyio
async def test_a_hedge_loser_ends_cancelled(telemetry: Telemetry) -> None:
    router = telemetry.router(hedge_after=0.01)
    router.add_provider(MockProvider(MockConfig(name="slow", latency=30)))
    router.add_provider(MockProvider(MockConfig(name="fast")))
    completion = await router.chat("hello")
    assert completion.provider == "fast"
    spans = {dict(s.attributes or {})["orchestrator.provider"]: s for s in telemetry.spans()
             if s.name == "chat mock-1"}  # fmt: skip
    loser = dict(spans["slow"].attributes or {})
    assert loser["orchestrator.attempt.outcome"] == "cancelled"
    assert "error.type" not in loser
    assert spans["slow"].status.status_code is StatusCode.UNSET
    outcomes = {
        (a["orchestrator.provider"], a["orchestrator.outcome"]): p.value
        for a, p in telemetry.points("orchestrator.attempts")
    }
    assert outcomes == {("slow", "cancelled"): 1, ("fast", "ok"): 1}
    timed = {a["orchestrator.provider"] for a, _ in telemetry.points(
        "gen_ai.client.operation.duration"
    )}  # fmt: skip
    assert timed == {"fast"}  # a cancelled attempt is no finished operation


@pytest.mark.anyio
async def test_a_cancelled_request(telemetry: Telemetry) -> None:
    router = telemetry.router()
    router.add_provider(MockProvider(MockConfig(name="slow", latency=30)))
    with anyio.move_on_after(0.05):
        await router.chat("hello")
    request = telemetry.span("orchestrator.chat")
    attributes = dict(request.attributes or {})
    assert attributes["orchestrator.outcome"] == "cancelled"
    assert "error.type" not in attributes
    assert request.status.status_code is StatusCode.UNSET
    attempt = dict(telemetry.span("chat mock-1").attributes or {})
    assert attempt["orchestrator.attempt.outcome"] == "cancelled"
    [(whole, _)] = telemetry.points("orchestrator.request.duration")
    assert whole == {"orchestrator.request.kind": "chat", "orchestrator.outcome": "cancelled"}


@pytest.mark.anyio
async def test_a_provider_without_a_model(telemetry: Telemetry) -> None:
    router = telemetry.router()
    router.add_provider(MockProvider(MockConfig(name="m", model=None)))
    await router.chat("hello")
    assert dict(telemetry.span("chat").attributes or {}).get("gen_ai.request.model") is None
    request = telemetry.span("orchestrator.chat")
    assert "gen_ai.request.model" not in dict(request.attributes or {})


class AcmeProvider(BaseProvider):  # a third party's class, named after its vendor
    async def generate(self, prompt: str, params: Any = None) -> str:  # pragma: no cover
        return prompt

    async def health_check(self) -> bool:  # pragma: no cover
        return True


class Branded(AcmeProvider):
    otel_provider_name = "acme.cloud"


def test_provider_system() -> None:
    from orchestrator_gigachat import GigaChatProvider
    from orchestrator_openai import OpenAIProvider
    from orchestrator_yandexgpt import YandexGPTProvider

    assert provider_system(OpenAIProvider) == "openai"  # the conventions' well-known value
    assert provider_system(GigaChatProvider) == "gigachat"
    assert provider_system(YandexGPTProvider) == "yandexgpt"
    assert provider_system(MockProvider) == "mock"
    assert provider_system(AcmeProvider) == "acme"
    assert provider_system(Branded) == "acme.cloud"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gigachat.devices.sberbank.ru/api/v1", ("gigachat.devices.sberbank.ru", 443)),
        ("http://localhost:11434", ("localhost", 11434)),
        ("localhost:8000/v1", ("localhost", 8000)),
        ("http://[::1]:9000/v1", ("::1", 9000)),
        ("http://host:99999", ("host", 80)),  # an impossible port: the scheme's
        ("ftp://host", ("host", None)),
    ],
)
def test_server_of_a_base_url(url: str, expected: tuple[str | None, int | None]) -> None:
    assert _plugin._server(url) == expected


def test_server_of_each_vendor() -> None:
    from orchestrator_gigachat import GigaChatConfig, GigaChatProvider
    from orchestrator_yandexgpt import YandexGPTConfig, YandexGPTProvider

    gigachat = GigaChatProvider(GigaChatConfig(name="g", api_key="k"))
    yandex = YandexGPTProvider(YandexGPTConfig(name="y", api_key="k", folder_id="f"))
    assert _plugin._server(str(_plugin._base_url(gigachat)))[0] == "gigachat.devices.sberbank.ru"
    assert _plugin._server(str(_plugin._base_url(yandex)))[1] == 443
    assert _plugin._base_url(MockProvider(MockConfig(name="m"))) is None


def test_error_type_and_description() -> None:
    assert error_type(RateLimitError("x")) == "RateLimitError"
    assert error_type(TimeoutError()) == "TimeoutError"
    long = _plugin._describe(ValueError("x" * 1000))
    assert len(long) == 300 and long.endswith("…")
    assert _plugin._describe(ValueError()) == "ValueError"


@pytest.mark.parametrize(
    ("env", "latest", "capture"),
    [
        ({}, False, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}, True, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,gen_ai_latest_experimental "}, True, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http"}, False, False),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}, False, False),
        (
            {
                "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT",
            },
            True,
            True,
        ),
        (
            {
                "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
            },
            True,
            False,
        ),
        (
            {
                "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only",
            },
            True,
            False,
        ),
    ],
)
def test_environment_switches(env: dict[str, str], latest: bool, capture: bool) -> None:
    assert _semconv.latest_experimental(env) is latest
    assert _semconv.capture_content_from_env(env) is capture


def test_the_conventions_buckets() -> None:
    """The boundaries gen-ai-metrics.md gives (duration and time to first chunk; tokens)."""
    assert orchestrator_otel.DURATION_BUCKETS == (
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    )  # fmt: skip
    assert orchestrator_otel.TOKEN_BUCKETS == (
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
        67108864,
    )  # fmt: skip
