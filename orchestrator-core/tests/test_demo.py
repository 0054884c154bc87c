"""`orchestrator demo` against the real GigaChat and YandexGPT emulators, plus its parts."""

from __future__ import annotations

import io
from typing import Any

import pytest

import orchestrator
from orchestrator import Router
from orchestrator.errors import ConfigurationError
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.sync import SyncRouter

needs_emulators = pytest.mark.skipif(
    not all(
        __import__("importlib.util").util.find_spec(f"orchestrator_{v}")
        for v in ("gigachat", "yandexgpt")
    ),
    reason="needs orchestrator-gigachat[emulator] and orchestrator-yandexgpt[emulator]",
)


@needs_emulators
@pytest.mark.slow
def test_demo_shows_failover_breaker_and_cut_stream() -> None:
    from orchestrator.demo import run_demo

    out = io.StringIO()
    code = run_demo(requests=30, plain=True, out=out, pace=0.01, latency=0.02)
    text = out.getvalue()
    assert code == 0, text
    assert all(len(line) <= 80 for line in text.splitlines()), text  # wrapped between words
    text = " ".join(text.split())
    assert "FAILOVER" in text
    assert "breaker OPEN" in text and "breaker CLOSED" in text
    assert "CUT" in text and "StreamInterruptedError(partial_text=" in text
    assert "not continued elsewhere" in text
    assert "requests delivered" in text and "[ ]" not in text
    assert "\033[" not in text  # plain output off a terminal


@needs_emulators
def test_start_emulator_and_describe() -> None:
    from orchestrator.demo import describe_emulator, start_emulator

    server, app, config = start_emulator("gigachat", timeout=3.0)
    try:
        assert config is not None and config.timeout == 3.0
        assert app.request_count == 0
        text = describe_emulator("gigachat", server, config)
        assert server.base_url in text
        assert "export GIGACHAT_CREDENTIALS=" in text
        assert "export GIGACHAT_MODEL='GigaChat-2'" in text
        assert 'api_key = "${GIGACHAT_CREDENTIALS}"' in text
    finally:
        server.stop()
    server, app, config = start_emulator("yandexgpt")
    try:
        text = describe_emulator("yandexgpt", server, config)
        assert "export YC_API_KEY=" in text and "export YC_FOLDER_ID=" in text
    finally:
        server.stop()


def test_describe_without_config() -> None:
    from orchestrator.demo import describe_emulator

    class Server:
        base_url = "http://127.0.0.1:1"
        ca_file = "/tmp/ca.pem"

    text = describe_emulator("x", Server(), None)  # type: ignore[arg-type]
    assert text == "x emulator listening on http://127.0.0.1:1\nTLS CA certificate: /tmp/ca.pem"


def test_start_emulator_errors(registry: PluginRegistry) -> None:
    from orchestrator.demo import start_emulator

    with pytest.raises(ConfigurationError, match="ships no emulator"):
        start_emulator("mock", registry=registry)

    class Missing(MockProvider):
        emulator = "no_such_module_for_tests:App"

    class NoFactory(MockProvider):
        emulator = "orchestrator.providers.mock:NoSuchApp"

    class Plugin:
        @orchestrator.hookimpl
        def register_providers(self, register: Any) -> None:
            register(Missing, name="missing")
            register(NoFactory, name="nofactory")

    registry.register_plugin(Plugin(), name="test-plugin")
    with pytest.raises(ConfigurationError, match=r"pip install 'orchestrator-missing\[emulator\]'"):
        start_emulator("missing", registry=registry)
    with pytest.raises(ConfigurationError, match="has no 'NoSuchApp'"):
        start_emulator("nofactory", registry=registry)


def test_short_error() -> None:
    from orchestrator.demo import _short_error

    assert _short_error(None) == "error"
    assert _short_error("RateLimitError: slow down (provider=g, status=429, retry_after=0.3s)") == (
        "RateLimitError (status=429, retry_after=0.3s)"
    )
    assert _short_error("TransportError: refused") == "TransportError"


def _demo(registry: PluginRegistry, **first: Any) -> Any:
    from orchestrator.demo import Demo, PlainDisplay

    router = Router(registry=registry)
    router.add_provider(MockProvider(MockConfig(name="a", max_retries=1, backoff_base=0, **first)))
    router.add_provider(MockProvider(MockConfig(name="b")))
    out = io.StringIO()
    sync = SyncRouter(router)
    display = PlainDisplay(out, 10, width=200)
    demo = Demo(sync, {"a": object(), "b": object()}, display, pace=0)  # type: ignore[dict-item]
    return demo, sync, out


def test_events_derived_from_stats_when_hooks_are_silent(registry: PluginRegistry) -> None:
    demo, sync, out = _demo(registry, mode="server_error")
    with sync:
        before = demo.router.stats()["providers"]
        winner = sync.chat("x").provider
        demo.recorder.events.clear()  # as if the router called no hooks
        demo._account(before, winner)
    text = out.getvalue()
    assert "RETRY    a: ServiceUnavailableError (status=503), retried 1x" in text
    assert "FAILOVER a failed (ServiceUnavailableError (status=503)) -> answered by b" in text
    assert demo.tally.failovers == 1 and demo.tally.retries == 1


def test_undelivered_requests_fail_the_demo(registry: PluginRegistry) -> None:
    from orchestrator.demo import Demo, PlainDisplay

    router = Router(registry=registry)
    router.add_provider(MockProvider(MockConfig(name="a", mode="auth_error")))
    out = io.StringIO()
    with SyncRouter(router) as sync:
        demo = Demo(sync, {"a": object()}, PlainDisplay(out, 1), pace=0)  # type: ignore[dict-item]
        demo.ask(stream=False)
    assert demo.tally.undelivered == 1
    assert "not delivered: AllProvidersFailedError" in out.getvalue()
    assert not dict(demo.tally.checks())["every request delivered"]


def test_repeatedly_cut_stream_counts_as_undelivered(registry: PluginRegistry) -> None:
    from orchestrator.demo import Demo, PlainDisplay

    router = Router(registry=registry)
    router.add_provider(MockProvider(MockConfig(name="a", mode="stream_failure")))
    out = io.StringIO()
    with SyncRouter(router) as sync:
        demo = Demo(sync, {"a": object()}, PlainDisplay(out, 1), pace=0)  # type: ignore[dict-item]
        demo.ask(stream=True)
    assert demo.tally.cuts == 3 and demo.tally.undelivered == 1
    assert "cut three times" in out.getvalue()


def test_rich_display_renders() -> None:
    """The live terminal view (rich is a dependency of the demo): events, table, summary."""
    from orchestrator.demo import Event, RichDisplay, Tally

    out = io.StringIO()
    stats = {
        "providers": {
            "gigachat": {
                "successes": 3,
                "failures": 1,
                "latency_p50": 0.05,
                "latency_p95": None,
                "breaker": {"state": "open", "open_for": 1.0},
                "completion_tokens": 12,
                "cost": "0.01",
            }
        }
    }
    display = RichDisplay(out, 10)
    with display:
        display.event(Event(0.0, "phase", "1/6 [normal] traffic"))
        display.event(Event(0.1, "cut", "partial_text='[not markup]'"))
        display.progress(5, 10, stats)
        display.console.print(display._render())  # the current phase's events, in full
        tally = Tally(total=1, delivered=1, failovers=1, cuts=1)
        tally.breaker_opened.add("gigachat")
        tally.breaker_closed.add("gigachat")
        display.summary(stats, tally, 1.5)
    text = out.getvalue()
    assert "gigachat" in text and "1/1" in text and "[not markup]" in text
    assert "1/6 [normal] traffic: 1 cut stream" in text  # the phase's summary, escaped too


@pytest.mark.parametrize("requests", [0, -1, 6, 29])
def test_run_demo_refuses_a_workload_too_small_for_its_phases(requests: int) -> None:
    from orchestrator.demo import MIN_REQUESTS, run_demo

    out = io.StringIO()
    with pytest.raises(ConfigurationError, match=f"at least {MIN_REQUESTS} requests"):
        run_demo(requests=requests, out=out)
    assert out.getvalue() == ""  # refused before starting anything


def test_min_requests_is_the_clis() -> None:
    from orchestrator import cli
    from orchestrator.demo import MIN_REQUESTS

    assert MIN_REQUESTS == cli.DEMO_MIN_REQUESTS == 30


def test_plain_lines_break_between_words() -> None:
    from orchestrator.demo import Event, PlainDisplay, wrap

    text = (
        "gigachat: stream cut after 29 chars -> StreamInterruptedError(partial_text='GigaChat "
        "emulator: Translate '); not continued elsewhere, asking again"
    )
    out = io.StringIO()
    PlainDisplay(out, 1, width=80).event(Event(4.2, "cut", text))
    lines = out.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert all(line.startswith(" " * 17) for line in lines[1:])  # under the event's text
    assert " ".join(out.getvalue().split()) == f"[ 4.2s] CUT {' '.join(text.split())}"
    words = set(text.split())
    assert all(word in words for line in lines[1:] for word in line.split())
    assert wrap("a " * 40, 30, 2).splitlines()[1].startswith("  a")


def test_rich_display_keeps_a_summary_of_every_phase() -> None:
    """The live view showed only the last ~10 events: the failovers of earlier phases
    vanished. Finished phases now stay as one summary line each."""
    from orchestrator.demo import Event, RichDisplay, Tally

    out = io.StringIO()
    display = RichDisplay(out, 40)
    display.console.width = 100
    with display:
        display.event(Event(0.0, "phase", "2/6 rate limits"))
        display.event(Event(0.1, "retry", "gigachat: RateLimitError, retry 1 in 0.30s"))
        display.event(Event(0.2, "failover", "gigachat failed (RateLimitError)"))
        display.event(Event(0.3, "phase", "3/6 yandexgpt outage"))
        for n in range(15):
            display.event(Event(0.4 + n, "failover", f"yandexgpt failed #{n}"))
        display.event(Event(20.0, "breaker", "yandexgpt: breaker OPEN (cooldown 1.0s)"))
        display.event(Event(21.0, "phase", "4/6 yandexgpt recovers"))
        display.summary({"providers": {}}, Tally(total=1, delivered=1), 1.0)
    text = out.getvalue()
    assert "2/6 rate limits: 1 retry; 1 failover" in text
    assert "3/6 yandexgpt outage: 15 failovers; yandexgpt: breaker OPEN" in text
    assert "4/6 yandexgpt recovers: all answered first time" in text
