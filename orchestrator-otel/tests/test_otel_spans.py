"""Spans and metrics of a chat, a stream, a failover, a retry and an error, asserted by exact
attribute names and values (OTel SDK in-memory exporter and reader; OpenAI emulator)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from orchestrator import AllProvidersFailedError, Message
from orchestrator.testing import LoopbackServer
from orchestrator_otel import DURATION_BUCKETS, TOKEN_BUCKETS

from .conftest import Telemetry

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"


def base(server: LoopbackServer, provider: str, **more: Any) -> dict[str, Any]:
    """The metric attributes every attempt on the emulator carries."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "orchestrator.provider": provider,
        **more,
    }


def usage_attributes(completion: Any) -> dict[str, Any]:
    usage = completion.usage
    return {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
    }


async def test_chat(telemetry: Telemetry, make_provider: Any, server: LoopbackServer) -> None:
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    async with router:
        completion = await router.chat(
            "Hello there", {"temperature": 0.5, "max_tokens": 50, "stop": ["END"]}
        )

    attempt = telemetry.span(f"chat {MODEL}")
    request = telemetry.span("orchestrator.chat")
    assert attempt.kind is SpanKind.CLIENT
    assert request.kind is SpanKind.INTERNAL
    assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
    assert attempt.status.status_code is StatusCode.UNSET
    assert dict(attempt.attributes or {}) == {
        **base(server, "primary"),
        "orchestrator.attempt": 1,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.response.id": completion.extra["id"],
        "orchestrator.vendor.request_id": completion.request_id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        **usage_attributes(completion),
    }
    assert dict(request.attributes or {}) == {
        "orchestrator.request.kind": "chat",
        "orchestrator.outcome": "ok",
        "orchestrator.attempts": 1,
        "orchestrator.retries": 0,
        "orchestrator.fallbacks": 0,
        "orchestrator.provider": "primary",
        "gen_ai.response.model": MODEL,
    }
    assert request.events == ()

    ok = base(server, "primary", **{"gen_ai.response.model": MODEL})
    [(attributes, duration)] = telemetry.points("gen_ai.client.operation.duration")
    assert attributes == ok
    assert duration.count == 1
    assert tuple(duration.explicit_bounds) == DURATION_BUCKETS
    tokens = {a["gen_ai.token.type"]: p for a, p in telemetry.points("gen_ai.client.token.usage")}
    assert {k: (p.count, p.sum) for k, p in tokens.items()} == {
        "input": (1, completion.usage.prompt_tokens),
        "output": (1, completion.usage.completion_tokens),
    }
    assert tuple(tokens["input"].explicit_bounds) == TOKEN_BUCKETS
    assert telemetry.points("gen_ai.client.operation.time_to_first_chunk") == []
    [(attributes, attempts)] = telemetry.points("orchestrator.attempts")
    assert attributes == {
        "orchestrator.provider": "primary",
        "gen_ai.provider.name": "openai",
        "orchestrator.outcome": "ok",
    }
    assert attempts.value == 1
    [(attributes, whole)] = telemetry.points("orchestrator.request.duration")
    assert attributes == {"orchestrator.request.kind": "chat", "orchestrator.outcome": "ok"}
    assert whole.count == 1
    assert whole.sum >= duration.sum


async def test_stream(telemetry: Telemetry, make_provider: Any, server: LoopbackServer) -> None:
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    async with router:
        chunks = [chunk async for chunk in router.chat_stream("Hi")]
    last = chunks[-1]

    attempt = telemetry.span(f"chat {MODEL}")
    attributes = dict(attempt.attributes or {})
    ttfc = attributes.pop("gen_ai.response.time_to_first_chunk")
    assert isinstance(ttfc, float)
    assert ttfc > 0
    assert attributes == {
        **base(server, "primary"),
        "orchestrator.attempt": 1,
        "gen_ai.request.stream": True,
        "gen_ai.response.id": last.request_id,
        "orchestrator.vendor.request_id": last.request_id,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        **usage_attributes(last),
    }
    request = telemetry.span("orchestrator.stream")
    assert dict(request.attributes or {})["orchestrator.request.kind"] == "stream"
    ok = base(server, "primary", **{"gen_ai.response.model": MODEL})
    [(first_attributes, first)] = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert first_attributes == ok
    assert (first.count, first.sum) == (1, ttfc)
    assert tuple(first.explicit_bounds) == DURATION_BUCKETS
    [(_, duration)] = telemetry.points("gen_ai.client.operation.duration")
    assert duration.sum >= ttfc


async def test_failover(
    telemetry: Telemetry, make_provider: Any, server: LoopbackServer, emulator: Any
) -> None:
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    router.add_provider(make_provider("backup"))
    emulator.fail_next(503)
    async with router:
        completion = await router.chat("Hello")

    assert completion.provider == "backup"
    failed, answered = sorted(
        (s for s in telemetry.spans() if s.name == f"chat {MODEL}"), key=lambda s: s.start_time
    )
    failed_attributes = dict(failed.attributes or {})
    assert failed_attributes.pop("orchestrator.vendor.request_id").startswith("req_")
    assert failed_attributes == {
        **base(server, "primary"),
        "orchestrator.attempt": 1,
        "error.type": "ServiceUnavailableError",
    }
    assert failed.status.status_code is StatusCode.ERROR
    assert "503" in (failed.status.description or "")
    assert dict(answered.attributes or {})["orchestrator.provider"] == "backup"
    request = telemetry.span("orchestrator.chat")
    assert [(e.name, dict(e.attributes or {})) for e in request.events] == [
        (
            "orchestrator.fallback",
            {"orchestrator.provider": "primary", "error.type": "ServiceUnavailableError"},
        )
    ]
    attributes = dict(request.attributes or {})
    assert (attributes["orchestrator.attempts"], attributes["orchestrator.fallbacks"]) == (2, 1)
    assert attributes["orchestrator.provider"] == "backup"
    assert request.status.status_code is StatusCode.UNSET

    [(fallback_attributes, fallbacks)] = telemetry.points("orchestrator.fallbacks")
    assert fallback_attributes == {
        "orchestrator.provider": "primary",
        "error.type": "ServiceUnavailableError",
    }
    assert fallbacks.value == 1
    durations = {a["orchestrator.provider"]: a for a, _ in telemetry.points(
        "gen_ai.client.operation.duration"
    )}  # fmt: skip
    assert durations == {
        "primary": base(server, "primary", **{"error.type": "ServiceUnavailableError"}),
        "backup": base(server, "backup", **{"gen_ai.response.model": MODEL}),
    }
    outcomes = {
        (a["orchestrator.provider"], a["orchestrator.outcome"]): p.value
        for a, p in telemetry.points("orchestrator.attempts")
    }
    assert outcomes == {("primary", "error"): 1, ("backup", "ok"): 1}


async def test_retry(
    telemetry: Telemetry, make_provider: Any, server: LoopbackServer, emulator: Any
) -> None:
    router = telemetry.router()
    router.add_provider(make_provider("primary", max_retries=2))
    emulator.fail_next(429)
    async with router:
        await router.chat("Hello")

    [delay] = telemetry.sleeps  # the backoff the router waited (recorded, not slept)
    request = telemetry.span("orchestrator.chat")
    assert [(e.name, dict(e.attributes or {})) for e in request.events] == [
        (
            "orchestrator.retry",
            {
                "orchestrator.provider": "primary",
                "orchestrator.attempt": 1,
                "orchestrator.retry.delay": delay,
                "error.type": "RateLimitError",
            },
        )
    ]
    attributes = dict(request.attributes or {})
    assert (attributes["orchestrator.attempts"], attributes["orchestrator.retries"]) == (2, 1)
    spans = sorted(
        (s for s in telemetry.spans() if s.name == f"chat {MODEL}"), key=lambda s: s.start_time
    )
    assert [dict(s.attributes or {})["orchestrator.attempt"] for s in spans] == [1, 2]
    assert [dict(s.attributes or {}).get("error.type") for s in spans] == ["RateLimitError", None]
    [(retry_attributes, retries)] = telemetry.points("orchestrator.retries")
    assert retry_attributes == {"orchestrator.provider": "primary", "error.type": "RateLimitError"}
    assert retries.value == 1


async def test_error(
    telemetry: Telemetry, make_provider: Any, server: LoopbackServer, emulator: Any
) -> None:
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    emulator.fail_next(401)
    async with router:
        with pytest.raises(AllProvidersFailedError):
            await router.chat("Hello")

    attempt = telemetry.span(f"chat {MODEL}")
    assert dict(attempt.attributes or {})["error.type"] == "AuthenticationError"
    assert attempt.status.status_code is StatusCode.ERROR
    request = telemetry.span("orchestrator.chat")
    assert request.status.status_code is StatusCode.ERROR
    attributes = dict(request.attributes or {})
    assert attributes == {
        "orchestrator.request.kind": "chat",
        "orchestrator.outcome": "error",
        "orchestrator.attempts": 1,
        "orchestrator.retries": 0,
        "orchestrator.fallbacks": 0,
        "error.type": "AllProvidersFailedError",
    }
    [(duration_attributes, _)] = telemetry.points("gen_ai.client.operation.duration")
    assert duration_attributes == base(server, "primary", **{"error.type": "AuthenticationError"})
    assert telemetry.points("gen_ai.client.token.usage") == []
    [(whole, _)] = telemetry.points("orchestrator.request.duration")
    assert whole == {
        "orchestrator.request.kind": "chat",
        "orchestrator.outcome": "error",
        "error.type": "AllProvidersFailedError",
    }


async def test_stream_cut_after_text(
    telemetry: Telemetry, make_provider: Any, server: LoopbackServer, emulator: Any
) -> None:
    """A stream that breaks after its first text ends its attempt with the request's error
    (no attempt hook reports it)."""
    from orchestrator import StreamInterruptedError

    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    emulator.cut_next_stream(after_chunks=1)
    async with router:
        with pytest.raises(StreamInterruptedError):
            async for _ in router.chat_stream("Tell me a long story please"):
                pass

    attempt = telemetry.span(f"chat {MODEL}")
    attributes = dict(attempt.attributes or {})
    assert attributes["error.type"] == "StreamInterruptedError"
    assert "gen_ai.response.time_to_first_chunk" in attributes
    assert attempt.status.status_code is StatusCode.ERROR
    request = telemetry.span("orchestrator.stream")
    assert dict(request.attributes or {})["orchestrator.outcome"] == "error"
    [(first_attributes, _)] = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert first_attributes["error.type"] == "StreamInterruptedError"


async def test_legacy_conventions_by_default(
    make_telemetry: Any, make_provider: Any, server: LoopbackServer
) -> None:
    """Without the opt-in the provider is ``gen_ai.system`` (the v1.36 name), as the OTel
    contrib instrumentations emit by default."""
    telemetry = make_telemetry(latest=None)
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    async with router:
        await router.chat("Hello")
    attributes = dict(telemetry.span(f"chat {MODEL}").attributes or {})
    assert attributes["gen_ai.system"] == "openai"
    assert "gen_ai.provider.name" not in attributes
    [(metric_attributes, _)] = telemetry.points("gen_ai.client.operation.duration")
    assert metric_attributes["gen_ai.system"] == "openai"
    assert "gen_ai.provider.name" not in metric_attributes


async def test_opt_in_from_the_environment(
    make_telemetry: Any, make_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    telemetry = make_telemetry(latest=None)
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    async with router:
        await router.chat("Hello")
    attributes = dict(telemetry.span(f"chat {MODEL}").attributes or {})
    assert attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.system" not in attributes


CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"}


async def test_content_is_never_recorded_by_default(
    telemetry: Telemetry, make_provider: Any
) -> None:
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    async with router:
        await router.chat([Message("system", "Be brief"), Message("user", "secret question")])
    for span in telemetry.spans():
        attributes = dict(span.attributes or {})
        assert not CONTENT_KEYS & set(attributes)
        assert not any("secret question" in str(v) for v in attributes.values())


async def test_content_when_opted_in(make_telemetry: Any, make_provider: Any) -> None:
    telemetry = make_telemetry(capture_content=True)
    router = telemetry.router()
    router.add_provider(make_provider("primary"))
    async with router:
        completion = await router.chat([Message("system", "Be brief"), Message("user", "Hi")])
    attributes = dict(telemetry.span(f"chat {MODEL}").attributes or {})
    assert attributes["gen_ai.system_instructions"] == '[{"type": "text", "content": "Be brief"}]'
    assert attributes["gen_ai.input.messages"] == (
        '[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]'
    )
    assert attributes["gen_ai.output.messages"] == (
        '[{"role": "assistant", "parts": [{"type": "text", "content": "'
        + completion.text
        + '"}], "finish_reason": "stop"}]'
    )
