"""The ``orchestrator`` command.

    orchestrator providers                 installed provider plugins (and failed ones)
    orchestrator ask "Hello"               one prompt through the configured router
    orchestrator chat                      an interactive session
    orchestrator health                    each configured provider's health and latency
    orchestrator emulate gigachat          a vendor emulator on loopback for your app's tests
    orchestrator demo                      failover, breakers and a cut stream, live, offline

The router comes from ``--config PATH``, else ``./orchestrator.toml`` when present, else the
environment (``Router.from_env()``). Exit codes: 0 success, 1 the request or a check failed,
2 bad usage or configuration, 130 interrupted. Errors go to stderr; colour only on a
terminal and never with ``NO_COLOR`` set.

Only ``argparse`` is imported at start-up so ``orchestrator --help`` stays fast; each command
imports what it needs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from orchestrator.router import Router
    from orchestrator.sync import SyncRouter
    from orchestrator.types import Completion

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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
    print(f"{_style('error:', '31;1', sys.stderr)} {message}", file=sys.stderr)


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
        model = getattr(args, "model", None)
        if model:
            for provider in router.providers:
                if pinned is None or provider.config.name == pinned:
                    provider.config.model = model
    except NoProvidersError as exc:
        raise UsageError(
            f"{exc}\nTry it offline first: `orchestrator demo`, or `orchestrator emulate "
            "gigachat` and point GIGACHAT_* at it."
        ) from None
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    return router


def _names(router: Router) -> list[str]:
    return [p.config.name for p in router.providers]


def _params(args: argparse.Namespace) -> dict[str, Any] | None:
    params = {
        key: value
        for key, value in (("temperature", args.temperature), ("max_tokens", args.max_tokens))
        if value is not None
    }
    return params or None


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


def _answer(
    sync: SyncRouter,
    messages: Any,
    args: argparse.Namespace,
) -> str:
    """Stream (or, with --json, fetch) one answer to stdout; return its text."""
    import json

    options: dict[str, Any] = {"provider": args.provider}
    if args.json:
        completion = sync.chat(messages, _params(args), **options)
        print(json.dumps(_completion_json(completion), ensure_ascii=False))
        return completion.text
    parts: list[str] = []
    provider = None
    for chunk in sync.chat_stream(messages, _params(args), **options):
        provider = chunk.provider
        parts.append(chunk.delta)
        sys.stdout.write(chunk.delta)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if provider and use_color(sys.stderr) and args.verbose:
        print(_style(f"[{provider}]", "2", sys.stderr), file=sys.stderr)
    return "".join(parts)


# -- commands ---------------------------------------------------------------------------


def cmd_providers(args: argparse.Namespace) -> int:
    import json
    import warnings

    from orchestrator.plugins import PluginLoadWarning, default_registry

    registry = default_registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # shown below instead
        registry.load()
    infos = sorted(registry.providers.values(), key=lambda i: i.name)
    if args.json:
        print(
            json.dumps(
                {
                    "providers": [
                        {
                            "name": i.name,
                            "class": f"{i.cls.__module__}.{i.cls.__qualname__}",
                            "aliases": list(i.aliases),
                            "plugin": i.plugin,
                            "distribution": i.distribution,
                            "version": i.version,
                            "emulator": i.cls.emulator,
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
            "yes" if i.cls.emulator else "",
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
    import warnings

    from orchestrator.plugins import PluginLoadWarning, default_registry
    from orchestrator.pricing import describe_prices

    registry = default_registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # `orchestrator providers` shows them
        registry.load()
    infos = sorted(registry.providers.values(), key=lambda i: i.name)
    if args.provider:
        infos = [registry.provider_info(name) for name in args.provider]
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
    with SyncRouter(load_router(args)) as sync:
        _answer(sync, prompt, args)
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    from orchestrator.errors import OrchestratorError, StreamInterruptedError
    from orchestrator.sync import SyncRouter

    interactive = sys.stdin.isatty()
    history: list[dict[str, str]] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
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
                text = _answer(sync, history, args)
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
                continue
            except OrchestratorError as exc:
                _error(str(exc))
                history.pop()
                continue
            history.append({"role": "assistant", "content": text})
    return EXIT_OK


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


async def _timed_health(router: Router) -> list[dict[str, Any]]:
    import time

    import anyio

    results: dict[str, dict[str, Any]] = {}

    async def check(provider: Any) -> None:
        started = time.perf_counter()
        error = None
        try:
            healthy = bool(await provider.health_check())
        except Exception as exc:
            healthy, error = False, f"{type(exc).__name__}: {exc}"
        results[provider.config.name] = {
            "name": provider.config.name,
            "type": type(provider).__name__,
            "healthy": healthy,
            "latency": round(time.perf_counter() - started, 4),
            "error": error,
        }

    async with anyio.create_task_group() as tg:
        for provider in router.providers:
            tg.start_soon(check, provider)
    return [results[name] for name in _names(router)]


def cmd_emulate(args: argparse.Namespace) -> int:
    import time

    from orchestrator.demo import describe_emulator, start_emulator

    server, _app, config = start_emulator(args.vendor, tls=args.tls, port=args.port)
    try:
        print(describe_emulator(args.vendor, server, config), flush=True)
        print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.stop()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from orchestrator.demo import run_demo

    return run_demo(requests=args.requests, plain=args.plain, seed=args.seed)


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from orchestrator import __version__

    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Route LLM requests over GigaChat, YandexGPT and plugin providers.",
        epilog="Run `orchestrator COMMAND --help` for a command's options. Docs: docs/cli.md",
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
    asking.add_argument("--model", help="override the model of the providers asked")
    asking.add_argument("--temperature", type=float, help="sampling temperature (0..2)")
    asking.add_argument("--max-tokens", type=int, help="longest answer in tokens")
    asking.add_argument(
        "-v", "--verbose", action="store_true", help="say which provider answered (stderr)"
    )

    p = commands.add_parser(
        "providers",
        help="list installed provider plugins",
        description="List installed provider plugins with their distribution and version, "
        "and plugins that failed to load with the reason.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
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
    p.add_argument("--system", help="a system message to start the conversation with")
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
        "until Ctrl-C, and print how to point an application at it.",
    )
    p.add_argument("vendor", help="registered provider name, e.g. gigachat or yandexgpt")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    p.set_defaults(handler=cmd_emulate)

    p = commands.add_parser(
        "demo",
        help="watch failover, circuit breakers and a cut stream, offline",
        description="Start the GigaChat and YandexGPT emulators on loopback, route a "
        "scripted workload through both plugins while injecting rate limits, an outage "
        "and a cut stream, and show what the router does. Exits 0 when every request was "
        "delivered.",
    )
    p.add_argument("--requests", type=int, default=40, help="size of the workload (default 40)")
    p.add_argument("--plain", action="store_true", help="plain log lines even on a terminal")
    p.add_argument("--seed", type=int, default=7, help="random seed of the workload")
    p.set_defaults(handler=cmd_demo)
    return parser


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
    except BrokenPipeError:  # `orchestrator ... | head`: quiet, like other tools
        # Python would complain again while flushing stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def entry_point() -> None:  # pragma: no cover - the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
