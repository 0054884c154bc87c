"""The lifecycle-hook plugin: a span and metrics for every routed request and every attempt.

One ``orchestrator.chat`` / ``orchestrator.stream`` span (kind INTERNAL) per routed request,
with the retry and failover story as its events; under it one GenAI inference span per
attempt (``chat {model}``, kind CLIENT). Nothing is done until telemetry is configured: an
explicit tracer/meter provider or Prometheus exporter, or global OpenTelemetry providers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import orchestrator
from orchestrator_otel import _semconv as sc
from orchestrator_otel._watch import WATCHED, Watched

if TYPE_CHECKING:
    from decimal import Decimal

    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from orchestrator.events import Outcome, RequestInfo
    from orchestrator.health import ProviderSlot
    from orchestrator.providers.base import BaseProvider
    from orchestrator.types import Completion, Message, Usage
    from orchestrator_otel.prometheus import PrometheusExporter

__all__ = ["OrchestratorTelemetry", "error_type", "provider_system"]

SCOPE = "orchestrator_otel"
#: gen_ai.operation.name of a chat or stream request (``embeddings`` for Router.embed).
OPERATION = "chat"
PROVIDER = "orchestrator.provider"  # the provider's name inside the router (config.name)
#: The vendor's id of the HTTP request (what their support asks for), success or not.
VENDOR_REQUEST_ID = "orchestrator.vendor.request_id"
_NOT_CONFIGURED = ("ProxyTracerProvider", "NoOpTracerProvider")
_NO_METER = ("_ProxyMeterProvider", "NoOpMeterProvider")
_DESCRIPTION_LIMIT = 300


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("orchestrator-otel")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


@lru_cache(maxsize=256)
def provider_system(cls: type[Any]) -> str:
    """``gen_ai.provider.name`` of a provider class: its ``otel_provider_name`` attribute,
    else the plugin's name (``orchestrator_gigachat`` -> ``gigachat``; ``openai`` is also
    the conventions' well-known value), else the class name without ``Provider``."""
    explicit = getattr(cls, "otel_provider_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    module = cls.__module__
    top = module.partition(".")[0]
    if top.startswith("orchestrator_"):
        return top.removeprefix("orchestrator_")
    if module.startswith("orchestrator.providers."):
        return module.split(".")[2]
    name = cls.__name__.lower()
    return name.removesuffix("provider") or name


@lru_cache(maxsize=256)
def _server(url: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a base URL (the scheme's port if unsaid)."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.hostname, port


def _base_url(provider: BaseProvider) -> str | None:
    for url in (
        getattr(provider, "base_url", None),
        provider.config.base_url,
        getattr(provider, "DEFAULT_BASE_URL", None),
    ):
        if isinstance(url, str) and url:
            return url
    return None


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class name (low-cardinality, e.g. ``RateLimitError``)."""
    return type(error).__qualname__


def _describe(error: BaseException) -> str:
    """The span status description: the error's own message (router errors never carry
    credentials or prompts), shortened."""
    try:
        text = str(error)
    except Exception:  # pragma: no cover - a broken __str__ in a plugin's exception
        text = ""
    text = text or type(error).__name__
    return text if len(text) <= _DESCRIPTION_LIMIT else text[: _DESCRIPTION_LIMIT - 1] + "…"


def _text(content: str) -> list[dict[str, str]]:
    return [{"type": "text", "content": content}]


def _input_content(messages: Sequence[Message]) -> dict[str, str]:
    """``gen_ai.input.messages`` and ``gen_ai.system_instructions`` as JSON strings (the
    conventions' structure; Python spans have no structured attributes)."""
    system = [part for m in messages if m.role == "system" for part in _text(m.content)]
    chat = [{"role": m.role, "parts": _text(m.content)} for m in messages if m.role != "system"]
    found = {sc.INPUT_MESSAGES: json.dumps(chat, ensure_ascii=False)}
    if system:
        found[sc.SYSTEM_INSTRUCTIONS] = json.dumps(system, ensure_ascii=False)
    return found


def _global_providers_set() -> bool:
    """Whether the application installed a global tracer or meter provider (an SDK)."""
    return (
        type(trace.get_tracer_provider()).__name__ not in _NOT_CONFIGURED
        or type(metrics.get_meter_provider()).__name__ not in _NO_METER
    )


class _Instruments:
    """The OpenTelemetry instruments, with the conventions' bucket boundaries."""

    def __init__(self, meter: Meter, watched: Watched) -> None:
        self.watched = watched
        self.duration = meter.create_histogram(
            sc.OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            sc.TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=sc.TOKEN_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk in a streaming operation.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.request_duration = meter.create_histogram(
            "orchestrator.request.duration",
            unit="s",
            description="Duration of a routed request, across its retries and failovers.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.attempts = meter.create_counter(
            "orchestrator.attempts",
            unit="{attempt}",
            description="Attempts made on each provider, by outcome (ok, error, cancelled).",
        )
        self.retries = meter.create_counter(
            "orchestrator.retries",
            unit="{retry}",
            description="Retries of the same provider after a transient error.",
        )
        self.fallbacks = meter.create_counter(
            "orchestrator.fallbacks",
            unit="{fallback}",
            description="Failovers from a provider to the next one.",
        )
        self.cost = meter.create_counter(
            "orchestrator.cost",
            unit="RUB",
            description="Roubles spent (where a price is known).",
        )
        meter.create_observable_gauge(
            "orchestrator.breaker.state",
            callbacks=[self._breakers],
            unit="{state}",
            description="Circuit breaker of each provider: 0 closed, 1 half-open, 2 open.",
        )
        meter.create_observable_gauge(
            "orchestrator.budget.remaining",
            callbacks=[self._budgets],
            unit="RUB",
            description="Roubles left of each provider's budget (providers with a budget).",
        )
        meter.create_observable_gauge(
            "orchestrator.router.budget.remaining",
            callbacks=[self._router_budgets],
            unit="RUB",
            description="Roubles left of a watched router's budget.",
        )

    def _breakers(self, options: CallbackOptions) -> list[Observation]:
        from opentelemetry.metrics import Observation

        states = self.watched.breaker_states().items()
        return [Observation(state, {PROVIDER: name}) for name, state in states]

    def _budgets(self, options: CallbackOptions) -> list[Observation]:
        from opentelemetry.metrics import Observation

        budgets = self.watched.provider_budgets().items()
        return [Observation(left, {PROVIDER: name}) for name, left in budgets]

    def _router_budgets(self, options: CallbackOptions) -> list[Observation]:
        from opentelemetry.metrics import Observation

        budgets = self.watched.router_budgets().items()
        return [Observation(left, {"orchestrator.router": name}) for name, left in budgets]


@dataclass(frozen=True, slots=True, eq=False)
class _Setup:
    """One configuration, swapped whole by :meth:`OrchestratorTelemetry.configure`."""

    tracer: Tracer
    instruments: _Instruments
    prometheus: PrometheusExporter | None
    capture_content: bool
    latest: bool
    #: An explicit provider or exporter was given: record whatever the globals are.
    explicit: bool

    @property
    def provider_key(self) -> str:
        return sc.PROVIDER_NAME if self.latest else sc.SYSTEM


@dataclass(slots=True, eq=False)
class _Attempt:
    span: Span
    #: The metric attributes (a subset of the span's).
    attributes: dict[str, Any]
    provider: str
    system: str
    time_to_first_chunk: float | None = None
    started: float = field(default_factory=time.perf_counter)


@dataclass(slots=True, eq=False)
class _Request:
    setup: _Setup
    span: Span
    kind: str
    started: float = field(default_factory=time.perf_counter)
    attempts: dict[tuple[str, int], _Attempt] = field(default_factory=dict)
    #: The latest attempt on each provider (a first chunk names only the provider).
    current: dict[str, _Attempt] = field(default_factory=dict)
    count: int = 0
    retries: int = 0
    fallbacks: int = 0


class OrchestratorTelemetry:
    """Implements the router's lifecycle hooks with OpenTelemetry spans and metrics (and
    Prometheus series when given an exporter).

    The installed distribution registers one instance, :data:`orchestrator_otel.PLUGIN`,
    through the plugin entry point; :func:`orchestrator_otel.configure` configures it. Tests
    and applications that keep telemetry per router can register their own instance:
    ``registry.register_plugin(OrchestratorTelemetry(tracer_provider=...))``.

    ``tracer_provider`` / ``meter_provider``: default the global ones (no-ops until the
    application installs an SDK). ``prometheus``: a :class:`PrometheusExporter` to feed too.
    ``capture_content``: record message content on spans (default: the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` opt-in). ``latest``: the newest
    GenAI conventions (``gen_ai.provider.name``); default: whether
    ``OTEL_SEMCONV_STABILITY_OPT_IN`` contains ``gen_ai_latest_experimental``, else the
    v1.36 names (``gen_ai.system``), as the OTel contrib instrumentations do.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        prometheus: PrometheusExporter | None = None,
        capture_content: bool | None = None,
        latest: bool | None = None,
    ) -> None:
        self._requests: dict[int, _Request] = {}
        self._global_ready = False
        self.configure(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            prometheus=prometheus,
            capture_content=capture_content,
            latest=latest,
        )

    def configure(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        prometheus: PrometheusExporter | None = None,
        capture_content: bool | None = None,
        latest: bool | None = None,
    ) -> OrchestratorTelemetry:
        """Replace the whole configuration (what is not given returns to its default);
        requests already running finish with the one they started with."""
        version = _version()
        if latest is None:
            latest = sc.latest_experimental()
        if capture_content is None:
            capture_content = sc.capture_content_from_env()
        tracer = trace.get_tracer(SCOPE, version, tracer_provider)
        meter = metrics.get_meter(SCOPE, version, meter_provider)
        self._setup = _Setup(
            tracer,
            _Instruments(meter, WATCHED),
            prometheus,
            capture_content,
            latest,
            tracer_provider is not None or meter_provider is not None or prometheus is not None,
        )
        return self

    @property
    def prometheus(self) -> PrometheusExporter | None:
        """The Prometheus exporter this plugin feeds, if any."""
        return self._setup.prometheus

    def _active(self) -> bool:
        if self._setup.explicit or self._global_ready:
            return True
        if _global_providers_set():
            self._global_ready = True  # global providers can be set once, never unset
            return True
        return False

    # -- hooks ----------------------------------------------------------------------------

    @orchestrator.hookimpl
    def on_request_start(self, request: RequestInfo) -> None:
        if not self._active():
            return
        setup = self._setup
        attributes: dict[str, Any] = {"orchestrator.request.kind": request.kind}
        params = request.params
        if params is not None and params.model:
            attributes[sc.REQUEST_MODEL] = params.model
        span = setup.tracer.start_span(
            f"orchestrator.{request.kind}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        self._requests[request.id] = _Request(setup, span, request.kind)

    @orchestrator.hookimpl
    def on_attempt_start(
        self, request: RequestInfo, provider: str, attempt: int, slot: ProviderSlot
    ) -> None:
        state = self._requests.get(request.id)
        if state is None:
            return
        setup = state.setup
        WATCHED.add_slot(slot)
        instance = slot.provider
        system = provider_system(type(instance))
        params = request.params
        model = (params.model if params is not None else None) or instance.config.model
        operation = OPERATION
        if request.kind == "embed":
            operation = "embeddings"
            model = slot.embedding_space.model if slot.embedding_space else model
        attributes: dict[str, Any] = {sc.OPERATION_NAME: operation, setup.provider_key: system}
        if model:
            attributes[sc.REQUEST_MODEL] = model
        url = _base_url(instance)
        if url is not None:
            host, port = _server(url)
            if host:
                attributes[sc.SERVER_ADDRESS] = host
                if port is not None:
                    attributes[sc.SERVER_PORT] = port
        attributes[PROVIDER] = provider
        span_attributes = dict(attributes)
        span_attributes["orchestrator.attempt"] = attempt
        if state.kind == "stream":
            span_attributes[sc.REQUEST_STREAM] = True
        if params is not None:
            span_attributes[sc.REQUEST_TEMPERATURE] = params.temperature
            span_attributes[sc.REQUEST_MAX_TOKENS] = params.max_tokens
            span_attributes[sc.REQUEST_TOP_P] = params.top_p
            if params.stop:
                span_attributes[sc.REQUEST_STOP_SEQUENCES] = tuple(params.stop)
        if setup.capture_content:
            span_attributes.update(_input_content(request.messages))
        span = setup.tracer.start_span(
            f"{operation} {model}" if model else operation,
            context=trace.set_span_in_context(state.span),
            kind=SpanKind.CLIENT,
            attributes=span_attributes,
        )
        record = _Attempt(span, attributes, provider, system)
        state.attempts[provider, attempt] = record
        state.current[provider] = record
        state.count += 1

    @orchestrator.hookimpl
    def on_stream_first_chunk(self, request: RequestInfo, provider: str, latency: float) -> None:
        state = self._requests.get(request.id)
        record = None if state is None else state.current.get(provider)
        if record is None:
            return
        record.time_to_first_chunk = latency
        record.span.set_attribute(sc.RESPONSE_TIME_TO_FIRST_CHUNK, latency)

    @orchestrator.hookimpl
    def on_attempt_success(
        self,
        request: RequestInfo,
        provider: str,
        attempt: int,
        latency: float,
        result: Completion,
    ) -> None:
        state = self._requests.get(request.id)
        record = None if state is None else state.attempts.pop((provider, attempt), None)
        if state is None or record is None:
            return
        if result.model:
            record.attributes[sc.RESPONSE_MODEL] = result.model
        found: dict[str, Any] = {}
        completion_id = result.extra.get("id") or result.request_id
        if isinstance(completion_id, str) and completion_id:
            found[sc.RESPONSE_ID] = completion_id
        if result.request_id:
            found[VENDOR_REQUEST_ID] = result.request_id
        if result.model:
            found[sc.RESPONSE_MODEL] = result.model
        if result.finish_reason is not None:
            found[sc.RESPONSE_FINISH_REASONS] = (result.finish_reason,)
        usage = result.usage
        if usage is not None:
            found[sc.USAGE_INPUT_TOKENS] = usage.prompt_tokens
            found[sc.USAGE_OUTPUT_TOKENS] = usage.completion_tokens
            if usage.cached_prompt_tokens is not None:
                found[sc.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_prompt_tokens
            if usage.reasoning_tokens is not None:
                found[sc.USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
        if result.cost is not None:
            found["orchestrator.cost"] = float(result.cost)
        if state.setup.capture_content:
            message: dict[str, Any] = {"role": "assistant", "parts": _text(result.text)}
            if result.finish_reason is not None:
                message["finish_reason"] = result.finish_reason
            found[sc.OUTPUT_MESSAGES] = json.dumps([message], ensure_ascii=False)
        record.span.set_attributes(found)
        record.span.end()
        self._record(state.setup, record, "ok", latency, usage, result.cost)

    @orchestrator.hookimpl
    def on_attempt_error(
        self,
        request: RequestInfo,
        provider: str,
        attempt: int,
        latency: float,
        error: BaseException,
    ) -> None:
        state = self._requests.get(request.id)
        record = None if state is None else state.attempts.pop((provider, attempt), None)
        if state is None or record is None:
            return
        self._fail(state.setup, record, error, latency)

    @orchestrator.hookimpl
    def on_retry(
        self, request: RequestInfo, provider: str, attempt: int, delay: float, error: BaseException
    ) -> None:
        state = self._requests.get(request.id)
        if state is None:
            return
        state.retries += 1
        kind = error_type(error)
        state.span.add_event(
            "orchestrator.retry",
            {
                PROVIDER: provider,
                "orchestrator.attempt": attempt,
                "orchestrator.retry.delay": delay,
                sc.ERROR_TYPE: kind,
            },
        )
        setup = state.setup
        setup.instruments.retries.add(1, {PROVIDER: provider, sc.ERROR_TYPE: kind})
        if setup.prometheus is not None:
            setup.prometheus.record_retry(provider, kind)

    @orchestrator.hookimpl
    def on_fallback(self, request: RequestInfo, from_provider: str, error: BaseException) -> None:
        state = self._requests.get(request.id)
        if state is None:
            return
        state.fallbacks += 1
        kind = error_type(error)
        event = {PROVIDER: from_provider, sc.ERROR_TYPE: kind}
        state.span.add_event("orchestrator.fallback", event)
        setup = state.setup
        setup.instruments.fallbacks.add(1, event)
        if setup.prometheus is not None:
            setup.prometheus.record_fallback(from_provider, kind)

    @orchestrator.hookimpl
    def on_request_end(
        self,
        request: RequestInfo,
        result: Completion | None,
        error: BaseException | None,
        outcome: Outcome,
    ) -> None:
        state = self._requests.pop(request.id, None)
        if state is None:
            return
        setup = state.setup
        # Attempts no hook ended: a stream cut after its first text (the request's error),
        # a plugin's bug, a hedge's loser or the caller's cancellation (cancelled).
        for record in state.attempts.values():
            if outcome == "error" and error is not None:
                self._fail(setup, record, error, time.perf_counter() - record.started)
            else:
                record.span.set_attribute("orchestrator.attempt.outcome", "cancelled")
                record.span.end()
                self._record(setup, record, "cancelled", None)
        span = state.span
        found: dict[str, Any] = {
            "orchestrator.outcome": outcome,
            "orchestrator.attempts": state.count,
            "orchestrator.retries": state.retries,
            "orchestrator.fallbacks": state.fallbacks,
        }
        kind = ""
        if result is not None:
            found[PROVIDER] = result.provider
            if result.model:
                found[sc.RESPONSE_MODEL] = result.model
            if result.cost is not None:
                found["orchestrator.cost"] = float(result.cost)
        if error is not None:
            kind = error_type(error)
            found[sc.ERROR_TYPE] = kind
            span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.set_attributes(found)
        span.end()
        duration = time.perf_counter() - state.started
        attributes: dict[str, Any] = {
            "orchestrator.request.kind": state.kind,
            "orchestrator.outcome": outcome,
        }
        if kind:
            attributes[sc.ERROR_TYPE] = kind
        setup.instruments.request_duration.record(duration, attributes)
        if setup.prometheus is not None:
            setup.prometheus.record_request(state.kind, outcome, kind, duration)

    # -- recording ------------------------------------------------------------------------

    def _fail(self, setup: _Setup, record: _Attempt, error: BaseException, latency: float) -> None:
        kind = error_type(error)
        record.attributes[sc.ERROR_TYPE] = kind
        span = record.span
        span.set_attribute(sc.ERROR_TYPE, kind)
        request_id = getattr(error, "request_id", None)
        if isinstance(request_id, str) and request_id:
            span.set_attribute(VENDOR_REQUEST_ID, request_id)
        span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.end()
        self._record(setup, record, "error", latency)

    @staticmethod
    def _record(
        setup: _Setup,
        record: _Attempt,
        outcome: str,
        latency: float | None,
        usage: Usage | None = None,
        cost: Decimal | None = None,
    ) -> None:
        instruments = setup.instruments
        attributes = record.attributes
        if latency is not None:  # a cancelled attempt is no finished operation
            instruments.duration.record(latency, attributes)
            if record.time_to_first_chunk is not None:
                instruments.time_to_first_chunk.record(record.time_to_first_chunk, attributes)
        if usage is not None:
            instruments.tokens.record(usage.prompt_tokens, {**attributes, sc.TOKEN_TYPE: "input"})
            instruments.tokens.record(
                usage.completion_tokens, {**attributes, sc.TOKEN_TYPE: "output"}
            )
        key = setup.provider_key
        counted: dict[str, Any] = {
            PROVIDER: record.provider,
            key: record.system,
            "orchestrator.outcome": outcome,
        }
        kind = attributes.get(sc.ERROR_TYPE)
        if kind is not None:
            counted[sc.ERROR_TYPE] = kind
        instruments.attempts.add(1, counted)
        model = attributes.get(sc.RESPONSE_MODEL) or attributes.get(sc.REQUEST_MODEL)
        if cost is not None:
            priced: dict[str, Any] = {PROVIDER: record.provider, key: record.system}
            if model:
                priced[sc.RESPONSE_MODEL] = model
            instruments.cost.add(float(cost), priced)
        if setup.prometheus is not None:
            setup.prometheus.record_attempt(
                attributes,
                record.system,
                outcome,
                latency,
                record.time_to_first_chunk,
                None if usage is None else usage.prompt_tokens,
                None if usage is None else usage.completion_tokens,
                None if cost is None else float(cost),
            )
