"""The ``orchestrator`` command.

    orchestrator providers                 installed provider plugins (and failed ones)
    orchestrator ask "Hello"               one prompt through the configured router
    orchestrator chat                      an interactive session
    orchestrator health                    each configured provider's health and latency
    orchestrator emulate gigachat          a vendor emulator on loopback for your app's tests
    orchestrator demo                      failover, breakers and a cut stream, live, offline

The router comes from ``--config PATH``, else ``./orchestrator.toml`` when present, else the
environment (``Router.from_env()``). Exit codes: 0 success, 1 the request or a check failed,
2 bad usage or configuration (one ``error:`` line naming the flag, variable or key, never a
traceback), 130 interrupted. Errors and the library's warnings go to stderr (``-v`` adds
retries and failovers); colour only on a terminal and never with ``NO_COLOR`` set.

Only ``argparse`` is imported at start-up so ``orchestrator --help`` stays fast; each command
imports what it needs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import logging

    from orchestrator.router import Router
    from orchestrator.sync import SyncRouter
    from orchestrator.types import Chunk, Completion, GenerationParams

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM

#: The demo's six phases need this many requests (``demo --requests``).
DEMO_MIN_REQUESTS = 30


class UsageError(Exception):
    """Bad usage or configuration: exit code 2."""


# -- output -------------------------------------------------------------------------------


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` (https://no-color.org) or a dumb
    terminal."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _style(text: str, code: str, stream: TextIO) -> str:
    return f"\033[{code}m{text}\033[0m" if use_color(stream) else text


def _error(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()  # what was printed comes first
    print(f"{_style('error:', '31;1', sys.stderr)} {message}", file=sys.stderr)


def _number(
    kind: type[float] | type[int],
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Callable[[str], Any]:
    """An argparse ``type`` that parses ``kind`` and checks its range, so a bad value is
    argparse's one ``error:`` line naming the flag (exit 2)."""
    import math

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {text}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be at least {at_least:g}, got {text}")
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be at most {at_most:g}, got {text}")
        return value

    return parse


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


# -- the router ---------------------------------------------------------------------------


def load_router(args: argparse.Namespace) -> Router:
    """The router ``--config`` / ``./orchestrator.toml`` / the environment describe, with
    ``--strategy`` and ``--model`` applied."""
    from orchestrator.errors import ConfigurationError, NoProvidersError
    from orchestrator.settings import DEFAULT_CONFIG_FILE, router_from_config, router_from_env

    path = getattr(args, "config", None)
    try:
        if path is None and os.path.exists(DEFAULT_CONFIG_FILE):
            path = DEFAULT_CONFIG_FILE
        router = router_from_config(path) if path is not None else router_from_env()
        strategy = getattr(args, "strategy", None)
        if strategy:
            router.strategy = router.registry.strategy_class(strategy)()
            router.strategy_name = strategy
        pinned = getattr(args, "provider", None)
        if pinned is not None and pinned not in _names(router):
            raise UsageError(
                f"--provider {pinned!r} is not configured; configured providers: "
                f"{', '.join(_names(router))}"
            )
        asked = [p for p in router.providers if pinned is None or p.config.name == pinned]
        model = getattr(args, "model", None)
        timeout = getattr(args, "timeout", None)
        for provider in asked:
            if model:
                provider.config.model = model
            if timeout is not None:
                provider.config.timeout = timeout
        deadline = getattr(args, "deadline", None)
        if deadline is not None:
            router.deadline = deadline
    except NoProvidersError as exc:
        raise UsageError(
            f"{exc}\nTry it offline first: `orchestrator demo`, or `orchestrator emulate "
            "gigachat` and point GIGACHAT_* at it."
        ) from None
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # the router refused a value the settings let through
        where = f"{path}: " if path is not None else ""
        raise UsageError(f"{where}{exc}") from None
    return router


def _names(router: Router) -> list[str]:
    return [p.config.name for p in router.providers]


def _option_value(text: str) -> Any:
    """``-o KEY VALUE``: JSON when it parses (numbers, lists), else the text itself."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _params(args: argparse.Namespace) -> GenerationParams | None:
    """The generation parameters of ``--temperature``, ``--max-tokens`` and ``-o``, checked
    before any request: a bad one is a usage error naming the flag."""
    from pydantic import ValidationError

    from orchestrator.types import GenerationParams

    fields = GenerationParams.model_fields
    given: dict[str, tuple[str, Any]] = {}  # key -> (how it was given, value)
    for key, value in (("temperature", args.temperature), ("max_tokens", args.max_tokens)):
        if value is not None:
            given[key] = (f"--{key.replace('_', '-')} {value:g}", value)
    for key, text in getattr(args, "option", None) or []:
        name = key.replace("-", "_")
        if name not in fields:
            raise UsageError(f"-o {key}: unknown parameter; use one of {', '.join(sorted(fields))}")
        value = _option_value(text)
        if name == "stop" and isinstance(value, str):
            value = [value]
        given[name] = (f"-o {key} {text}", value)
    if not given:
        return None
    try:
        return GenerationParams(**{name: value for name, (_, value) in given.items()})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        source = given[name][0] if name in given else "parameters"
        problem = str(error["msg"]).removeprefix("Value error, ")
        raise UsageError(f"{source}: {problem[:1].lower()}{problem[1:]}") from None


def _completion_json(completion: Completion) -> dict[str, Any]:
    usage = completion.usage
    return {
        "text": completion.text,
        "provider": completion.provider,
        "model": completion.model,
        "finish_reason": completion.finish_reason,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "request_id": completion.request_id,
        "latency": round(completion.latency, 4),
        "cost": None if completion.cost is None else str(completion.cost),
    }


def _usage_line(
    provider: str, model: str | None, usage: Any, cost: Any, latency: float | None
) -> str:
    parts = [f"provider {provider}"]
    if model:
        parts.append(f"model {model}")
    if usage is not None:
        parts.append(
            f"tokens {usage.prompt_tokens} prompt + {usage.completion_tokens} completion = "
            f"{usage.total_tokens}"
        )
    else:
        parts.append("tokens not reported")
    parts.append("cost unknown" if cost is None else f"cost {cost} RUB")
    if latency is not None:
        parts.append(f"{latency:.2f}s")
    return ", ".join(parts)


def _answer(
    sync: SyncRouter,
    messages: Any,
    args: argparse.Namespace,
    params: GenerationParams | None = None,
) -> str:
    """Stream (or, with --json or --no-stream, fetch) one answer to stdout; return its text."""
    import json
    import time

    options: dict[str, Any] = {"provider": args.provider}
    started = time.monotonic()
    if args.json or args.no_stream:
        completion = sync.chat(messages, params, **options)
        if args.json:
            print(json.dumps(_completion_json(completion), ensure_ascii=False))
        else:
            print(completion.text)
        _after_answer(
            args,
            completion.provider,
            _usage_line(
                completion.provider,
                completion.model,
                completion.usage,
                completion.cost,
                time.monotonic() - started,
            ),
        )
        return completion.text
    parts: list[str] = []
    last: Chunk | None = None
    try:
        for chunk in sync.chat_stream(messages, params, **options):
            last = chunk
            parts.append(chunk.delta)
            sys.stdout.write(chunk.delta)
            sys.stdout.flush()
    except BaseException:
        if parts and not parts[-1].endswith("\n"):
            # The error (stderr) must not be glued to the partial answer on a terminal.
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    sys.stdout.write("\n")
    if last is not None:
        _after_answer(
            args,
            last.provider,
            _usage_line(
                last.provider, last.model, last.usage, last.cost, time.monotonic() - started
            ),
        )
    return "".join(parts)


def _after_answer(args: argparse.Namespace, provider: str, usage_line: str) -> None:
    """``-u`` prints what the answer used, ``-v`` which provider gave it (both stderr)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    if args.usage:
        print(_style(f"[{usage_line}]", "2", sys.stderr), file=sys.stderr)
    elif args.verbose and provider:
        print(_style(f"[{provider}]", "2", sys.stderr), file=sys.stderr)


# -- commands ---------------------------------------------------------------------------


def cmd_providers(args: argparse.Namespace) -> int:
    import json

    from orchestrator.plugins import default_registry

    registry = default_registry()
    registry.load()  # never raises: a plugin that fails to load is listed below
    if args.check:  # import the classes plugins named without importing (a failure is listed)
        registry.load_provider_classes()
    # What is listed is known without importing a provider class (nor pydantic, nor httpx).
    infos = sorted(registry.providers.values(), key=lambda i: i.name)
    if args.json:
        print(
            json.dumps(
                {
                    "providers": [
                        {
                            "name": i.name,
                            "class": i.class_path,
                            "aliases": list(i.aliases),
                            "plugin": i.plugin,
                            "distribution": i.distribution,
                            "version": i.version,
                            "emulator": i.emulator,
                        }
                        for i in infos
                    ],
                    "failed": [
                        {
                            "plugin": f.plugin,
                            "distribution": f.distribution,
                            "version": f.version,
                            "reason": f.reason,
                        }
                        for f in registry.failures
                    ],
                },
                indent=2,
            )
        )
        return EXIT_OK
    rows = [
        (
            i.name,
            i.distribution or "multi-llm-orchestrator-core (built-in)",
            i.version or "",
            ", ".join(i.aliases),
            "yes" if i.emulator else "",
        )
        for i in infos
    ]
    print(_table(rows, ("PROVIDER", "DISTRIBUTION", "VERSION", "ALIASES", "EMULATOR")))
    if registry.failures:
        print()
        print(_style("Failed to load:", "31;1", sys.stdout))
        failed = [
            (f.plugin, f.distribution or "?", f.version or "", f.reason) for f in registry.failures
        ]
        print(_table(failed, ("PLUGIN", "DISTRIBUTION", "VERSION", "REASON")))
    return EXIT_OK


def cmd_prices(args: argparse.Namespace) -> int:
    import json

    from orchestrator.plugins import default_registry
    from orchestrator.pricing import describe_prices

    registry = default_registry()
    registry.load()  # never raises: `orchestrator providers --check` shows load failures
    if args.provider:
        infos = [registry.provider_info(name) for name in args.provider]
    else:  # each class is imported for its prices; one that fails to is left out
        registry.load_provider_classes()
        infos = sorted(registry.providers.values(), key=lambda i: i.name)
    reports = [
        {"provider": i.name, "distribution": i.distribution, "version": i.version}
        | describe_prices(i.cls.prices)
        for i in infos
    ]
    if args.json:
        print(json.dumps({"providers": reports}, indent=2, ensure_ascii=False))
        return EXIT_OK
    for number, report in enumerate(reports):
        origin = " ".join(filter(None, (report["distribution"], report["version"])))
        title = f"{report['provider']} ({origin or 'built-in'})"
        if number:
            print()
        if not report["prices"]:
            print(f"{title}: no list prices")
            print(f"  {report['missing']}")
        else:
            print(f"{title}: {report['currency']} per 1,000 tokens")
            header = ("MODEL", "NAME", "MODE", "PROMPT", "COMPLETION", "CACHED", "TOOLS")
            rows = [
                [p["model"] or "-", p["name"], p["mode"]]
                + [p.get(k) or "-" for k in ("prompt", "completion", "cached", "tools")]
                + [p["as_of"] or "-", f"[{p['source']}]" if p["source"] else "-", p["note"]]
                for p in report["prices"]
            ]
            print(_table(rows, (*header, "AS OF", "SOURCE", "NOTE")))
        for source in report["sources"]:
            print(f"  [{source['key']}] {source['title']}: {source['url']}")
            print(f"      as of {source['as_of']}; {source['how']}".rstrip("; "))
        for model, reason in report["unpriced"].items():
            print(f"  {model}: no price ({reason})")
        if report["prices"] or report["unpriced"]:
            print("  override: [providers.<name>.prices.MODEL] in the config file")
    return EXIT_OK


def cmd_ask(args: argparse.Namespace) -> int:
    from orchestrator.sync import SyncRouter

    prompt = args.prompt
    if prompt is None or prompt == "-":
        prompt = sys.stdin.read().strip()
    if not prompt.strip():
        raise UsageError("the prompt is empty; pass it as an argument or on stdin")
    params = _params(args)
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    with SyncRouter(load_router(args)) as sync:
        _answer(sync, messages, args, params)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    from orchestrator.errors import OrchestratorError, StreamInterruptedError
    from orchestrator.sync import SyncRouter

    interactive = sys.stdin.isatty()
    params = _params(args)
    history: list[dict[str, str]] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    answered = failed = 0
    with SyncRouter(load_router(args)) as sync:
        if interactive:
            names = ", ".join(_names(sync.router))
            print(
                f"Chatting through {names} ({sync.router.strategy_name}). "
                "Ctrl-C stops an answer; Ctrl-D or /exit leaves.",
                file=sys.stderr,
            )
        while True:
            try:
                line = input(_style("> ", "1", sys.stdout) if interactive else "")
            except EOFError:
                break
            if line.strip() in ("/exit", "/quit"):
                break
            if not line.strip():
                continue
            history.append({"role": "user", "content": line})
            try:
                text = _answer(sync, history, args, params)
            except KeyboardInterrupt:
                if not interactive:
                    raise
                # Ctrl-C stops this answer (cancelled on the loop too), not the whole chat.
                print()
                print("(interrupted; the question is kept out of the history)", file=sys.stderr)
                history.pop()
                continue
            except StreamInterruptedError as exc:
                _error(f"{exc}\n(the partial answer above is kept out of the history)")
                history.pop()
                failed += 1
                continue
            except OrchestratorError as exc:
                _error(str(exc))
                history.pop()
                failed += 1
                continue
            answered += 1
            history.append({"role": "assistant", "content": text})
    # Scripts piping turns in learn that nothing was answered.
    return EXIT_FAILED if failed and not answered else EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    import json

    from orchestrator.sync import SyncRouter

    with SyncRouter(load_router(args)) as sync:
        results: list[dict[str, Any]] = sync._call(_timed_health, sync.router)
    if args.json:
        print(json.dumps({"providers": results}, indent=2))
    else:
        rows = [
            (
                r["name"],
                r["type"],
                _style("healthy", "32", sys.stdout)
                if r["healthy"]
                else _style("UNHEALTHY", "31;1", sys.stdout),
                f"{r['latency'] * 1000:.0f} ms",
                r["error"] or "",
            )
            for r in results
        ]
        print(_table(rows, ("PROVIDER", "TYPE", "STATUS", "LATENCY", "ERROR")))
    return EXIT_OK if all(r["healthy"] for r in results) else EXIT_FAILED


@contextlib.contextmanager
def _health_reasons() -> Iterator[dict[str, list[str]]]:
    """Collect what each provider logs while its health check runs (``health_check()``
    returns only a bool; the reason is in the provider's log record), keyed by provider
    logger name. The library logs it at INFO, so INFO is enabled for the duration."""
    import logging

    reasons: dict[str, list[str]] = {}

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("orchestrator.providers."):
                reasons.setdefault(record.name, []).append(record.getMessage())

    logger = logging.getLogger("orchestrator")
    handler = Collect(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _reason(name: str, messages: list[str]) -> str:
    """The reason a provider logged, without its ``NAME: health check failed:`` prefix."""
    for message in reversed(messages):
        _, found, reason = message.partition("health check failed: ")
        if found:
            return reason.strip()
    if messages:
        return messages[-1].removeprefix(f"{name}: ")
    return "the health check failed (the provider gave no reason)"


async def _timed_health(router: Router) -> list[dict[str, Any]]:
    import time

    import anyio

    results: dict[str, dict[str, Any]] = {}

    async def check(provider: Any, reasons: dict[str, list[str]]) -> None:
        started = time.perf_counter()
        error = None
        try:
            healthy = bool(await provider.health_check())
        except Exception as exc:
            healthy, error = False, f"{type(exc).__name__}: {exc}"
        if not healthy and error is None:
            name = provider.config.name
            error = _reason(name, reasons.get(f"orchestrator.providers.{name}", []))
        results[provider.config.name] = {
            "name": provider.config.name,
            "type": type(provider).__name__,
            "healthy": healthy,
            "latency": round(time.perf_counter() - started, 4),
            "error": error,
        }

    with _health_reasons() as reasons:
        async with anyio.create_task_group() as tg:
            for provider in router.providers:
                tg.start_soon(check, provider, reasons)
    return [results[name] for name in _names(router)]


class _Terminated(Exception):
    """SIGTERM arrived: unwind so ``finally`` blocks (temporary files) run."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def cmd_emulate(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time

    from orchestrator.demo import describe_emulator, start_emulator

    # Without a handler SIGTERM kills the process before the TLS certificates' temporary
    # directory (orchestrator-tls-*) is removed.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        server, _app, config = start_emulator(args.vendor, tls=args.tls, port=args.port)
        try:
            print(describe_emulator(args.vendor, server, config), flush=True)
            print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
            return EXIT_INTERRUPTED
        except _Terminated:
            print("stopped (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        finally:
            server.stop()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def cmd_metrics(args: argparse.Namespace) -> int:
    from orchestrator.errors import ConfigurationError

    try:
        from orchestrator_otel.cli import run
    except ImportError as exc:
        raise ConfigurationError(
            f"`orchestrator metrics` needs the orchestrator-otel package ({exc}); "
            "install it: pip install orchestrator-otel"
        ) from None
    return run(load_router(args), host=args.host, port=args.port, interval=args.interval)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from orchestrator_gateway.server import serve
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "orchestrator_gateway":
            raise
        raise UsageError(
            "`orchestrator serve` needs the gateway: pip install orchestrator-gateway"
        ) from None
    return serve(args.config, host=args.host, port=args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from orchestrator.demo import run_demo

    return run_demo(requests=args.requests, plain=args.plain, seed=args.seed)


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from orchestrator import DOCS_URL, __version__

    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Route LLM requests over GigaChat, YandexGPT and plugin providers.",
        epilog="Run `orchestrator COMMAND --help` for a command's options. "
        f"Docs: {DOCS_URL}/cli.md; debugging output of any program using the library: "
        "ORCHESTRATOR_LOG=debug",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    routed = argparse.ArgumentParser(add_help=False)
    routed.add_argument(
        "--config",
        metavar="PATH",
        help="TOML configuration (default: ./orchestrator.toml if present, "
        "else providers with credentials in the environment)",
    )
    routed.add_argument("--strategy", help="override the routing strategy")
    routed.add_argument("--json", action="store_true", help="print JSON instead of text")

    asking = argparse.ArgumentParser(add_help=False)
    asking.add_argument("--provider", metavar="NAME", help="ask only this provider (no failover)")
    asking.add_argument("-m", "--model", help="override the model of the providers asked")
    asking.add_argument(
        "-s", "--system", metavar="TEXT", help="a system message to start the conversation with"
    )
    asking.add_argument("--temperature", type=float, help="sampling temperature (0..2)")
    asking.add_argument("--max-tokens", type=int, metavar="N", help="longest answer in tokens")
    asking.add_argument(
        "-o",
        "--option",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="a generation parameter: temperature, max_tokens, top_p or stop (repeatable; "
        "VALUE is JSON or text, e.g. -o top_p 0.9 -o stop '[\"END\"]')",
    )
    asking.add_argument(
        "--timeout",
        type=_number(float, above=0, at_most=3600),
        metavar="SECONDS",
        help="seconds for one HTTP request to a provider (default: each provider's, 30)",
    )
    asking.add_argument(
        "--deadline",
        type=_number(float, above=0),
        metavar="SECONDS",
        help="seconds for the whole answer, across retries and failovers (default: none)",
    )
    asking.add_argument(
        "--no-stream", action="store_true", help="print the answer when complete, not as it comes"
    )
    asking.add_argument(
        "-u",
        "--usage",
        action="store_true",
        help="after the answer, print provider, model, tokens and cost (stderr)",
    )
    asking.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show retries and failovers as they happen, and which provider answered (stderr)",
    )

    p = commands.add_parser(
        "providers",
        help="list installed provider plugins",
        description="List installed provider plugins with their distribution and version, "
        "and plugins that failed to load with the reason. Provider classes a plugin names "
        "without importing them are imported with --check (one that fails to import is "
        "listed as failed).",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--check",
        action="store_true",
        help="import every provider class too, so one that cannot be imported is listed",
    )
    p.set_defaults(handler=cmd_providers)

    p = commands.add_parser(
        "prices",
        help="list the prices the provider plugins ship, with sources",
        description="Print every list price the installed provider plugins ship (roubles "
        "per 1,000 tokens) with its source and date, and the models with no known price.",
    )
    p.add_argument("provider", nargs="*", help="only these providers (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(handler=cmd_prices)

    p = commands.add_parser(
        "ask",
        parents=[routed, asking],
        help="answer one prompt, streaming",
        description="Answer one prompt through the configured router, streaming the text.",
    )
    p.add_argument("prompt", nargs="?", help="the prompt (read from stdin when omitted or -)")
    p.set_defaults(handler=cmd_ask)

    p = commands.add_parser(
        "chat",
        parents=[routed, asking],
        help="an interactive session",
        description="Chat through the configured router; the conversation is kept between "
        "turns. Ctrl-C stops an answer; Ctrl-D or /exit leaves.",
    )
    p.set_defaults(handler=cmd_chat)

    p = commands.add_parser(
        "health",
        parents=[routed],
        help="check each configured provider",
        description="Run each configured provider's health check and show its latency. "
        "Exits 1 when any provider is unhealthy.",
    )
    p.set_defaults(handler=cmd_health)

    p = commands.add_parser(
        "emulate",
        help="run a vendor emulator on loopback",
        description="Serve a provider plugin's emulator of its vendor's API on 127.0.0.1 "
        "until Ctrl-C (exit 130) or SIGTERM (exit 143), and print how to point an "
        "application at it.",
    )
    p.add_argument("vendor", help="registered provider name, e.g. gigachat or yandexgpt")
    p.add_argument(
        "--port",
        type=_number(int, at_least=0, at_most=65535),
        default=0,
        help="port to listen on (default: a free one)",
    )
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    p.set_defaults(handler=cmd_emulate)

    p = commands.add_parser(
        "metrics",
        parents=[routed],
        help="serve Prometheus metrics of the configured providers (orchestrator-otel)",
        description="Health-check the configured providers every --interval seconds and "
        "serve their breaker states and budgets at http://HOST:PORT/metrics until Ctrl-C. "
        "Needs the orchestrator-otel package.",
    )
    p.add_argument(
        "--port",
        type=_number(int, at_least=0, at_most=65535),
        default=9464,
        help="port to listen on (default 9464; 0: a free one)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)",
    )
    p.add_argument(
        "--interval",
        type=_number(float, at_least=0.1),
        default=30.0,
        help="seconds between health checks (default 30)",
    )
    p.set_defaults(handler=cmd_metrics)

    p = commands.add_parser(
        "demo",
        help="watch failover, circuit breakers and a cut stream, offline",
        description="Start the GigaChat and YandexGPT emulators on loopback, route a "
        "scripted workload through both plugins while injecting rate limits, an outage "
        "and a cut stream, and show what the router does. Exits 0 when every request was "
        "delivered.",
    )
    p.add_argument(
        "--requests",
        type=_number(int, at_least=DEMO_MIN_REQUESTS),
        default=40,
        help=f"size of the workload (default 40, at least {DEMO_MIN_REQUESTS}: six phases)",
    )
    p.add_argument("--plain", action="store_true", help="plain log lines even on a terminal")
    p.add_argument("--seed", type=int, default=7, help="random seed of the workload")
    p.set_defaults(handler=cmd_demo)

    p = commands.add_parser(
        "serve",
        help="serve the router as an OpenAI-compatible HTTP API (orchestrator-gateway)",
        description="Serve /v1/chat/completions, /v1/embeddings and /v1/models over the "
        "configured router until SIGTERM or Ctrl-C (in-flight streams finish first). "
        "Needs the orchestrator-gateway distribution; settings in the [gateway] table.",
    )
    p.add_argument(
        "--config", metavar="PATH", default="orchestrator.toml", help="TOML configuration"
    )
    p.add_argument("--host", help="address to bind (default: [gateway] host, 127.0.0.1)")
    p.add_argument(
        "--port", type=_number(int, at_least=0, at_most=65535), help="port (default: 8000)"
    )
    p.set_defaults(handler=cmd_serve)
    return parser


@contextlib.contextmanager
def _log_to_stderr(*, verbose: bool) -> Iterator[None]:
    """The library is silent by default; the command shows its warnings (a credential found
    but not used, TLS verification off) and, with ``-v``, its INFO records: retries and
    failovers, whether or not stderr is a terminal. ``ORCHESTRATOR_LOG`` wins when set."""
    import logging

    from orchestrator import _logging

    if _logging.env_handler() is not None:
        yield
        return

    class Format(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            label = "warning" if record.levelno >= logging.WARNING else "info"
            return _style(f"{label}: {record.getMessage()}", "2", sys.stderr)

    logger = logging.getLogger(_logging.ROOT)
    level = logger.level
    handler: logging.Handler = _logging.attach_stderr_handler(
        logging.INFO if verbose else logging.WARNING
    )
    handler.setFormatter(Format())
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from orchestrator.errors import ConfigurationError, OrchestratorError

    try:
        with _log_to_stderr(verbose=bool(getattr(args, "verbose", False))):
            return int(handler(args))
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ConfigurationError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OrchestratorError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        return EXIT_TERMINATED
    except BrokenPipeError:  # `orchestrator ... | head`: quiet, like other tools
        # Python would complain again while flushing stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def entry_point() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
