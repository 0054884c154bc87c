"""``orchestrator demo`` and ``orchestrator emulate``: vendor emulators on loopback.

The demo starts the GigaChat and YandexGPT emulators (found through each registered provider
class's ``emulator`` attribute), builds a router over the two plugins discovered through
entry points, and runs a scripted workload while injecting faults:

1. normal traffic, round-robin over both providers;
2. GigaChat rate limits with ``Retry-After`` (retried after the hold, then failed over);
3. a YandexGPT outage long enough to open its circuit breaker (traffic fails over);
4. recovery: after the cooldown a probe succeeds and the breaker closes;
5. a GigaChat stream cut mid-way: reported as ``StreamInterruptedError`` with the partial
   text (never continued by the other provider), then asked again;
6. normal traffic.

It exits 0 when every request was delivered and the failover, the breaker opening and
closing and the reported stream cut were all seen.
"""

from __future__ import annotations

import importlib
import random
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from orchestrator.cli import DEMO_MIN_REQUESTS
from orchestrator.errors import ConfigurationError, OrchestratorError, StreamInterruptedError
from orchestrator.hookspecs import hookimpl
from orchestrator.pricing import Price

if TYPE_CHECKING:
    from orchestrator.config import ProviderConfig
    from orchestrator.plugins import PluginRegistry
    from orchestrator.router import Router
    from orchestrator.sync import SyncRouter
    from orchestrator.testing import LoopbackServer
    from orchestrator.testing.scripting import ScriptableApp

__all__ = ["MIN_REQUESTS", "describe_emulator", "run_demo", "start_emulator"]

VENDORS = ("gigachat", "yandexgpt")
#: The smallest workload the six phases fit in (``--requests``).
MIN_REQUESTS = DEMO_MIN_REQUESTS
_PROMPTS = (
    "Summarise the plot of War and Peace in three sentences",
    "Explain what a circuit breaker does in a distributed system",
    "Write a short poem about the Volga river in winter",
    "List five ways to reduce the cost of calling a large language model",
    "Translate 'the router keeps answering when providers fail' into Russian",
    "Give three tips for writing a good error message",
    "What is the difference between latency and throughput?",
    "Describe the Moscow metro in one paragraph",
)


# -- emulators --------------------------------------------------------------------------------


def start_emulator(
    vendor: str,
    *,
    tls: bool = False,
    port: int = 0,
    registry: PluginRegistry | None = None,
    **overrides: Any,
) -> tuple[LoopbackServer, ScriptableApp, ProviderConfig | None]:
    """Serve ``vendor``'s emulator on loopback; returns the running server, the app (to
    script faults) and a config pointed at it (None when the plugin has no ``config_for``).
    """
    from orchestrator.plugins import default_registry

    registry = registry or default_registry()
    info = registry.provider_info(vendor)
    spec = info.cls.emulator
    if not spec:
        raise ConfigurationError(
            f"The {info.name!r} provider ({info.distribution or 'built-in'}) ships no emulator"
        )
    module_name, _, factory_name = spec.partition(":")
    dist = info.distribution or f"orchestrator-{info.name}"
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, factory_name)
        from orchestrator.testing import LoopbackServer
    except ImportError as exc:
        raise ConfigurationError(
            f"The {info.name} emulator needs its extra: pip install '{dist}[emulator]' "
            f"({type(exc).__name__}: {exc})"
        ) from None
    except AttributeError:
        raise ConfigurationError(
            f"{dist} names emulator {spec!r}, but {module_name} has no {factory_name!r}"
        ) from None
    app = factory()
    server = LoopbackServer(app, tls=tls, port=port)
    try:
        server.start()
    except OSError as exc:
        raise ConfigurationError(f"Cannot listen on 127.0.0.1:{port}: {exc}") from None
    config_for = getattr(module, "config_for", None)
    config = None
    if config_for is not None:
        config = config_for(server, name=info.name, **overrides)
    return server, app, config


#: Config field -> environment variable, for plugins whose ``ENV_VARS`` is not keyed by field.
_KNOWN_ENV = {
    "yandexgpt": {
        "api_key": "YC_API_KEY",
        "folder_id": "YC_FOLDER_ID",
        "base_url": "YANDEXGPT_BASE_URL",
    },
}


def _env_vars(vendor: str, registry: PluginRegistry | None = None) -> dict[str, str]:
    """Config field -> environment variable the plugin reads (its ``ENV_VARS`` when keyed by
    config field)."""
    from orchestrator.plugins import default_registry

    cls = (registry or default_registry()).provider_info(vendor).cls
    package = importlib.import_module(cls.__module__.partition(".")[0])
    found = getattr(package, "ENV_VARS", None) or {}
    fields = cls.config_class.model_fields
    if found and all(key in fields for key in found):
        return dict(found)
    return dict(_KNOWN_ENV.get(vendor, {}))


def describe_emulator(
    vendor: str,
    server: LoopbackServer,
    config: ProviderConfig | None,
    registry: PluginRegistry | None = None,
) -> str:
    """How to point an application at a running emulator: env vars and a config table."""
    from orchestrator.config import Secret

    lines = [f"{vendor} emulator listening on {server.base_url}"]
    if server.ca_file:
        lines.append(f"TLS CA certificate: {server.ca_file}")
    if config is None:
        return "\n".join(lines)
    env_names = _env_vars(vendor, registry)
    fields = type(config).model_fields
    values = {
        key: getattr(config, key)
        for key in sorted(config.model_fields_set)
        if key != "name"
        and getattr(config, key) is not None
        # The model even when it is the default: a vendor SDK configured only from this
        # environment needs it (the gigachat SDK refuses to call without GIGACHAT_MODEL).
        and (key == "model" or getattr(config, key) != fields[key].default)
    }
    exports, toml = [], [f"[providers.{config.name}]"]
    for key, value in values.items():
        secret = isinstance(value, Secret)
        env = env_names.get(key) or (f"{vendor}_{key}".upper() if secret else None)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if env is not None:
            exports.append(f"export {env}='{text}'")
        if secret:
            toml.append(f'{key} = "${{{env}}}"')
        elif isinstance(value, bool | int | float):
            toml.append(f"{key} = {text}")
        else:
            toml.append(f'{key} = "{text}"')
    lines += ["", "Environment (for Router.from_env() and `orchestrator ask`):", *exports]
    lines += ["", "Or in orchestrator.toml (the emulator's made-up credentials):", *toml]
    return "\n".join(lines)


# -- what happened ------------------------------------------------------------------------------


@dataclass
class Event:
    """One thing the demo shows in its event log."""

    at: float
    kind: str  # phase | fault | retry | failover | breaker | cut | error | ok
    text: str


class _Recorder:
    """Router lifecycle hooks -> events (used when the router calls them)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    @hookimpl
    def on_retry(
        self, request: Any, provider: str, attempt: int, delay: float, error: BaseException
    ) -> None:
        self.events.append(
            ("retry", f"{provider}: {type(error).__name__}, retry {attempt} in {delay:.2f}s")
        )

    @hookimpl
    def on_fallback(self, request: Any, from_provider: str, error: BaseException) -> None:
        self.events.append(("failover", f"{from_provider} failed ({type(error).__name__})"))


@dataclass
class Tally:
    """What the demo promises to show, and the delivery count."""

    total: int = 0
    delivered: int = 0
    undelivered: int = 0
    failovers: int = 0
    retries: int = 0
    cuts: int = 0
    breaker_opened: set[str] = field(default_factory=set)
    breaker_closed: set[str] = field(default_factory=set)
    by_provider: dict[str, int] = field(default_factory=dict)

    def checks(self) -> list[tuple[str, bool]]:
        return [
            ("every request delivered", self.undelivered == 0 and self.delivered == self.total),
            ("at least one failover", self.failovers > 0),
            ("a breaker opened", bool(self.breaker_opened)),
            ("a breaker closed again", bool(self.breaker_closed & self.breaker_opened)),
            ("a cut stream reported as StreamInterruptedError", self.cuts > 0),
        ]


def _short_error(text: str | None) -> str:
    """``RateLimitError (status=429, retry_after=0.3s)`` from a stats ``last_error``."""
    if not text:
        return "error"
    kind = text.partition(":")[0]
    details = re.findall(r"(status=\d+|retry_after=[\d.]+s)", text)
    return f"{kind} ({', '.join(details)})" if details else kind


# -- displays ---------------------------------------------------------------------------------


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def provider_rows(stats: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, s in stats["providers"].items():
        rows.append(
            (
                name,
                str(s["successes"]),
                str(s["failures"]),
                _ms(s["latency_p50"]),
                _ms(s["latency_p95"]),
                s["breaker"]["state"],
                str(s["completion_tokens"]),
                f"{s['cost']}",
            )
        )
    return rows


#: Roubles per 1,000 tokens the demo charges when a plugin ships no prices (not a tariff).
ILLUSTRATIVE_PRICE = Price("0.2", "0.2")

HEADER = ("PROVIDER", "OK", "FAILED", "P50", "P95", "BREAKER", "TOKENS", "COST, RUB")


def _width() -> int:
    """The terminal's width (``COLUMNS``, else 80 off a terminal)."""
    return shutil.get_terminal_size((80, 24)).columns


def wrap(text: str, width: int, indent: int = 0) -> str:
    """``text`` broken between words to fit ``width`` columns (never inside a word, which a
    terminal does to long lines); continuation lines are indented by ``indent``."""
    return textwrap.fill(
        text,
        width=max(width, indent + 20),
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


class PlainDisplay:
    """Line-by-line output: for pipes, CI logs and ``NO_COLOR`` terminals. Lines are wrapped
    between words at ``width`` columns (default: the terminal's, else 80)."""

    def __init__(self, out: TextIO, total: int, width: int | None = None) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self.width = width or _width()

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def event(self, event: Event) -> None:
        prefix = f"[{event.at:5.1f}s] {event.kind.upper():<8} "
        print(wrap(prefix + event.text, self.width, len(prefix)), file=self.out)

    def progress(self, done: int, total: int, stats: dict[str, Any]) -> None:
        self.done, self.total = done, total

    def table(self, stats: dict[str, Any]) -> str:
        from orchestrator.cli import _table

        return _table(provider_rows(stats), HEADER)

    def summary(self, stats: dict[str, Any], tally: Tally, elapsed: float) -> None:
        print(file=self.out)
        print(self.table(stats), file=self.out)
        print(file=self.out)
        print(
            wrap(
                f"{tally.delivered}/{tally.total} requests delivered in {elapsed:.1f}s: "
                f"{tally.failovers} failover(s), {tally.retries} retried attempt(s), "
                f"{tally.cuts} cut stream(s) reported, breakers opened: "
                f"{', '.join(sorted(tally.breaker_opened)) or 'none'}, closed again: "
                f"{', '.join(sorted(tally.breaker_closed)) or 'none'}",
                self.width,
            ),
            file=self.out,
        )
        for text, ok in tally.checks():
            print(f"  [{'x' if ok else ' '}] {text}", file=self.out)


@dataclass
class Phase:
    """The events of one phase of the workload, for the live view's summary."""

    title: str
    events: list[Event] = field(default_factory=list)

    _NOUNS: ClassVar[dict[str, str]] = {
        "retry": "retry",
        "failover": "failover",
        "cut": "cut stream",
        "error": "undelivered",
    }

    def summary(self) -> str:
        """``3/6 yandexgpt outage: 5 failovers; yandexgpt: breaker OPEN``."""
        parts = []
        for kind, noun in self._NOUNS.items():
            count = sum(1 for e in self.events if e.kind == kind)
            if count:
                plural = "retries" if noun == "retry" else f"{noun}s"
                parts.append(f"{count} {noun if count == 1 else plural}")
        parts += [e.text.partition(" (")[0] for e in self.events if e.kind == "breaker"]
        return f"{self.title}: {'; '.join(parts) or 'all answered first time'}"


class RichDisplay(PlainDisplay):
    """A live terminal view: progress bar, provider table, a one-line summary of each
    finished phase and the events of the current one."""

    #: Events of the current phase shown in full.
    RECENT = 8

    STYLES: ClassVar[dict[str, str]] = {
        "phase": "bold cyan",
        "fault": "magenta",
        "retry": "yellow",
        "failover": "bold yellow",
        "breaker": "bold red",
        "cut": "bold magenta",
        "error": "red",
        "ok": "green",
    }

    def __init__(self, out: TextIO, total: int) -> None:
        super().__init__(out, total)
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(file=out)
        self.progress_bar = Progress(
            TextColumn("[bold]workload"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[phase]}"),
            console=self.console,
        )
        self.task = self.progress_bar.add_task("workload", total=total, phase="")
        self.events: list[Event] = []
        self.phases: list[Phase] = []
        self.stats: dict[str, Any] = {"providers": {}}
        self.live = Live(self._render(), console=self.console, refresh_per_second=8)

    def __enter__(self) -> RichDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live.is_started:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        table = Table(expand=True)
        for column in HEADER:
            table.add_column(
                column, justify="left" if column in ("PROVIDER", "BREAKER") else "right"
            )
        colours = {"closed": "green", "open": "bold red", "half_open": "yellow"}
        for row in provider_rows(self.stats):
            cells = list(row)
            cells[5] = f"[{colours.get(row[5], '')}]{row[5]}[/]"
            table.add_row(*cells)
        from rich.markup import escape

        lines = [f"[dim]✔ {escape(phase.summary())}[/]" for phase in self.phases[:-1]]
        current = self.phases[-1].events if self.phases else self.events
        if self.phases and self.phases[-1].title:
            lines.append(f"[{self.STYLES['phase']}]{escape(self.phases[-1].title)}[/]")
        lines += [
            f"[dim]{e.at:5.1f}s[/] [{self.STYLES.get(e.kind, '')}]{e.kind:<8}[/] {escape(e.text)}"
            for e in current[-self.RECENT :]
        ]
        log = "\n".join(lines)
        return Group(self.progress_bar, table, Panel(log or " ", title="what the router did"))

    def event(self, event: Event) -> None:
        self.events.append(event)
        if event.kind == "phase":
            from rich.markup import escape

            self.phases.append(Phase(event.text))
            self.progress_bar.update(self.task, phase=escape(event.text))
        elif self.phases:
            self.phases[-1].events.append(event)
        self.live.update(self._render())

    def progress(self, done: int, total: int, stats: dict[str, Any]) -> None:
        self.stats = stats
        self.progress_bar.update(self.task, completed=done, total=total)
        self.live.update(self._render())

    def summary(self, stats: dict[str, Any], tally: Tally, elapsed: float) -> None:
        self.stats = stats
        self.phases.append(Phase(""))  # every phase is finished: all shown as summaries
        self.live.update(self._render())
        self.__exit__()
        self.console.print(
            f"\n[bold]{tally.delivered}/{tally.total}[/] requests delivered in {elapsed:.1f}s: "
            f"{tally.failovers} failover(s), {tally.retries} retried attempt(s), "
            f"{tally.cuts} cut stream(s) reported; breakers opened: "
            f"{', '.join(sorted(tally.breaker_opened)) or 'none'}, closed again: "
            f"{', '.join(sorted(tally.breaker_closed)) or 'none'}"
        )
        for text, ok in tally.checks():
            mark = "[green]✔[/]" if ok else "[red]✘[/]"
            self.console.print(f"  {mark} {text}")


# -- the run ----------------------------------------------------------------------------------


class Demo:
    """One run of the scripted workload (``run_demo`` wires it to emulators)."""

    def __init__(
        self,
        sync: SyncRouter,
        apps: dict[str, ScriptableApp],
        display: PlainDisplay,
        *,
        requests: int = 40,
        seed: int = 7,
        pace: float = 0.05,
    ) -> None:
        self.sync = sync
        self.router: Router = sync.router
        self.apps = apps
        self.display = display
        self.requests = requests
        self.random = random.Random(seed)
        self.pace = pace
        self.tally = Tally()
        self.started = time.monotonic()
        self.recorder = _Recorder()
        self.router.registry.register_plugin(self.recorder, name="orchestrator-demo")
        self._states = dict.fromkeys(apps, "closed")

    # -- reporting --------------------------------------------------------------------

    def emit(self, kind: str, text: str) -> None:
        self.display.event(Event(time.monotonic() - self.started, kind, text))

    def _breakers(self) -> None:
        for name, s in self.router.stats()["providers"].items():
            state = s["breaker"]["state"]
            before = self._states.get(name, "closed")
            if state == before:
                continue
            self._states[name] = state
            if state == "open":
                self.tally.breaker_opened.add(name)
                self.emit(
                    "breaker", f"{name}: breaker OPEN (cooldown {s['breaker']['open_for']:.1f}s)"
                )
            elif state == "closed":
                self.tally.breaker_closed.add(name)
                self.emit("breaker", f"{name}: breaker CLOSED (probe succeeded)")
            else:
                self.emit("breaker", f"{name}: breaker half-open (cooldown over, probing)")

    def _account(self, before: dict[str, Any], winner: str | None) -> None:
        """Events for one request: from the hooks when the router calls them, else derived
        from the change in ``router.stats()``."""
        after = self.router.stats()["providers"]
        hooked, self.recorder.events = self.recorder.events, []
        failed = {
            name: after[name]["failures"] - before[name]["failures"]
            for name in after
            if after[name]["failures"] > before[name]["failures"]
        }
        if hooked:
            for kind, text in hooked:
                if kind == "failover":
                    self.tally.failovers += 1
                    text = f"{text} -> answered by {winner}" if winner else text
                else:
                    self.tally.retries += 1
                self.emit(kind, text)
        else:
            for name, count in failed.items():
                error = _short_error(after[name]["last_error"])
                if count > 1:
                    self.tally.retries += count - 1
                    self.emit("retry", f"{name}: {error}, retried {count - 1}x")
                if winner is not None and winner != name:
                    self.tally.failovers += 1
                    self.emit("failover", f"{name} failed ({error}) -> answered by {winner}")
        self._breakers()

    # -- requests ---------------------------------------------------------------------

    def _prompt(self) -> str:
        return self.random.choice(_PROMPTS)

    def ask(self, *, stream: bool, provider: str | None = None) -> None:
        """One workload request; a reported cut stream is asked again (up to 3 times)."""
        self.tally.total += 1
        prompt = self._prompt()
        for _attempt in range(3):
            before = self.router.stats()["providers"]
            try:
                winner = self._stream(prompt, provider) if stream else self._chat(prompt, provider)
            except StreamInterruptedError as exc:
                self.tally.cuts += 1
                self._account(before, None)
                shown = (
                    exc.partial_text
                    if len(exc.partial_text) < 40
                    else exc.partial_text[:37] + "..."
                )
                self.emit(
                    "cut",
                    f"{exc.provider}: stream cut after {len(exc.partial_text)} chars -> "
                    f"StreamInterruptedError(partial_text={shown!r}); not continued elsewhere, "
                    "asking again",
                )
                provider = None
                continue
            except OrchestratorError as exc:
                self._account(before, None)
                self.tally.undelivered += 1
                self.emit("error", f"not delivered: {type(exc).__name__}: {exc}")
                return
            self._account(before, winner)
            self.tally.delivered += 1
            self.tally.by_provider[winner] = self.tally.by_provider.get(winner, 0) + 1
            return
        self.tally.undelivered += 1
        self.emit("error", "not delivered: the stream was cut three times")

    def _chat(self, prompt: str, provider: str | None) -> str:
        return self.sync.chat(prompt, provider=provider).provider

    def _stream(self, prompt: str, provider: str | None) -> str:
        winner = ""
        for chunk in self.sync.chat_stream(prompt, provider=provider):
            winner = chunk.provider
        return winner

    # -- the script ---------------------------------------------------------------------

    def _tick(self) -> None:
        done = self.tally.total
        self.display.progress(done, max(self.requests, done), self.router.stats())
        time.sleep(self.pace)

    def _traffic(
        self,
        count: int,
        until: Callable[[], bool] | None = None,
        limit: float = 15.0,
        stream_every: int = 3,
    ) -> None:
        deadline = time.monotonic() + limit
        sent = 0
        while sent < count or (until is not None and not until() and time.monotonic() < deadline):
            self.ask(stream=(self.tally.total % stream_every == 0))
            sent += 1
            self._tick()
        self._breakers()

    def _settle(self, limit: float = 3.0) -> None:
        """Wait out any Retry-After hold, so the next fault meets a provider to fail over to
        (the router skips a provider it was told to leave alone)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and any(
            s["breaker"]["held_for"] > 0 for s in self.router.stats()["providers"].values()
        ):
            time.sleep(0.02)

    def run(self) -> Tally:
        giga, yandex = VENDORS
        n = self.requests
        self.emit("phase", f"1/6 normal traffic over {', '.join(self.apps)}")
        self._traffic(6)

        self.emit("phase", "2/6 rate limits")
        self.emit("fault", f"{giga} answers the next 2 calls with 429, Retry-After 0.3s")
        self.apps[giga].fail_next(429, times=2, retry_after=0.3)
        self._traffic(6)

        self._settle()
        self.emit("phase", f"3/6 {yandex} outage")
        self.emit("fault", f"{yandex} is down: every call gets 503")
        self.apps[yandex].outage = True
        self._traffic(6, until=lambda: self._states[yandex] == "open")
        self._traffic(2)

        self.emit("phase", f"4/6 {yandex} recovers")
        self.emit("fault", f"{yandex} is back up")
        self.apps[yandex].outage = False
        self._traffic(4, until=lambda: yandex in self.tally.breaker_closed)

        self._settle()
        self.emit("phase", "5/6 a stream cut mid-way")
        self.emit("fault", f"{giga} will cut its next stream after 2 chunks")
        self.apps[giga].cut_next_stream(after_chunks=2)
        cuts = self.tally.cuts
        self._traffic(2, until=lambda: self.tally.cuts > cuts, stream_every=1)
        if self.tally.cuts == cuts:  # round-robin sent every stream elsewhere: ask it directly
            self.ask(stream=True, provider=giga)
            self._tick()

        self.emit("phase", "6/6 normal traffic")
        self._traffic(max(2, n - self.tally.total))
        return self.tally


def build_router(
    configs: dict[str, ProviderConfig], registry: PluginRegistry | None = None
) -> Router:
    """The demo's router: round-robin, quick breakers, short backoffs."""
    from orchestrator.health import BreakerConfig
    from orchestrator.plugins import default_registry
    from orchestrator.router import Router

    registry = registry or default_registry()
    router = Router(
        "round-robin",
        deadline=10,
        breaker=BreakerConfig(
            consecutive_failures=3, min_samples=50, cooldown=1.0, max_cooldown=2.0, window=30
        ),
        registry=registry,
    )
    for name, config in configs.items():
        provider = registry.create_provider(name, config)
        options: dict[str, Any] = {}
        if not len(getattr(provider, "prices", {})):
            # So the cost column means something when a plugin ships no price list.
            options["prices"] = {"*": ILLUSTRATIVE_PRICE}
        router.add_provider(provider, **options)
    return router


@dataclass
class _Emulators:
    servers: list[LoopbackServer] = field(default_factory=list)
    apps: dict[str, ScriptableApp] = field(default_factory=dict)
    configs: dict[str, ProviderConfig] = field(default_factory=dict)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def _start_all(
    vendors: tuple[str, ...], registry: PluginRegistry | None, latency: float
) -> _Emulators:
    running = _Emulators()
    try:
        for vendor in vendors:
            server, app, config = start_emulator(
                vendor,
                registry=registry,
                max_retries=1,
                backoff_base=0.05,
                backoff_max=1.0,
                timeout=5.0,
            )
            running.servers.append(server)
            if config is None:
                raise ConfigurationError(f"The {vendor} emulator module has no config_for()")
            app.latency = latency
            running.apps[vendor] = app
            running.configs[vendor] = config
    except BaseException:
        running.stop()
        raise
    return running


def _pick_display(out: TextIO, plain: bool, total: int) -> PlainDisplay:
    from orchestrator.cli import use_color

    if not plain and use_color(out):  # pragma: no cover - needs a terminal
        try:
            return RichDisplay(out, total)
        except ImportError:
            pass
    return PlainDisplay(out, total)


def run_demo(
    *,
    requests: int = 40,
    plain: bool = False,
    seed: int = 7,
    out: TextIO | None = None,
    registry: PluginRegistry | None = None,
    vendors: tuple[str, ...] = VENDORS,
    pace: float = 0.05,
    latency: float = 0.06,
) -> int:
    """Run the demo; returns the exit code (0: every request delivered, all shown).

    ``pace`` is the pause between requests, ``latency`` the emulators' answer delay.
    """
    from orchestrator.sync import SyncRouter

    if requests < MIN_REQUESTS:
        raise ConfigurationError(
            f"The demo needs at least {MIN_REQUESTS} requests for its six phases, got "
            f"{requests}; pass --requests {MIN_REQUESTS} or more (default 40)"
        )
    out = out or sys.stdout
    started = time.monotonic()
    print("Starting the emulators on 127.0.0.1 ...", file=out, flush=True)
    running = _start_all(vendors, registry, latency)
    try:
        for vendor, server in zip(vendors, running.servers, strict=True):
            print(f"  {vendor:<10} {server.base_url}", file=out)
        router = build_router(running.configs, registry)
        print(
            wrap(
                f"  costs use {ILLUSTRATIVE_PRICE.prompt} RUB per 1,000 tokens where a plugin "
                "ships no prices (illustrative, not a vendor's tariff)",
                _width(),
                4,
            ),
            file=out,
        )
        with SyncRouter(router) as sync:
            display = _pick_display(out, plain, requests)
            with display:
                demo = Demo(sync, running.apps, display, requests=requests, seed=seed, pace=pace)
                tally = demo.run()
                display.summary(router.stats(), tally, time.monotonic() - started)
    finally:
        running.stop()
    return 0 if all(ok for _, ok in tally.checks()) else 1
