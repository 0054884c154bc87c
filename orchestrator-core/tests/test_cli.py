"""The `orchestrator` command: help, exit codes, stderr, colour, each subcommand."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator import cli
from orchestrator.errors import NoProvidersError
from orchestrator.plugins import PluginFailure, PluginRegistry

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "custom.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


MOCKS = """
[providers.first]
type = "mock"
response = "first answers"

[providers.second]
type = "mock"
"""


# -- help and usage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [[], ["providers"], ["ask"], ["chat"], ["health"], ["emulate"], ["demo"]],
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    assert "usage: orchestrator" in capsys.readouterr().out


def test_no_command_prints_help_to_stderr(run: Run) -> None:
    code, out, err = run()
    assert code == cli.EXIT_USAGE and out == "" and "COMMAND" in err


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["ask", "--temperature", "hot"])
    assert info.value.code == 2
    assert "invalid float value" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("orchestrator 0.")


def test_help_imports_nothing_heavy() -> None:
    """`orchestrator --help` must start fast: no HTTP client, pydantic, router or rich."""
    code = (
        "import sys\n"
        "from orchestrator import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ['httpx', 'pydantic', 'orchestrator.router', 'rich', 'anyio', 'uvicorn']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_console_script() -> None:
    exe = shutil.which("orchestrator", path=str(Path(sys.executable).parent))
    assert exe is not None, "the `orchestrator` console script is not installed"
    started = time.perf_counter()
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0 and "demo" in result.stdout
    print(f"orchestrator --help took {elapsed * 1000:.0f} ms")  # reported, never asserted


# -- colour -------------------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert cli.use_color(FakeTTY())
    assert not cli.use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli.use_color(FakeTTY())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not cli.use_color(FakeTTY())


def test_errors_are_plain_when_not_a_terminal(run: Run, config: Callable[..., Path]) -> None:
    code, _, err = run("ask", "--config", "missing.toml", "hi")
    assert code == 2 and err.startswith("error: ") and "\033[" not in err


# -- providers ----------------------------------------------------------------------------------


def test_providers_table(run: Run) -> None:
    code, out, _ = run("providers")
    assert code == 0
    assert out.splitlines()[0].split() == [
        "PROVIDER",
        "DISTRIBUTION",
        "VERSION",
        "ALIASES",
        "EMULATOR",
    ]
    assert "mock" in out and "multi-llm-orchestrator-core (built-in)" in out


def test_providers_json(run: Run) -> None:
    code, out, _ = run("providers", "--json")
    data = json.loads(out)
    assert code == 0
    mock = next(p for p in data["providers"] if p["name"] == "mock")
    assert mock["class"] == "orchestrator.providers.mock.MockProvider"
    assert data["failed"] == [] or all("reason" in f for f in data["failed"])


def test_providers_lists_failed_plugins(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = PluginRegistry(entry_points=False)
    registry.load()
    registry.failures.append(
        PluginFailure("broken", "orchestrator-broken", "0.1", "import failed: ImportError: x")
    )
    monkeypatch.setattr("orchestrator.plugins.default_registry", lambda: registry)
    code, out, _ = run("providers")
    assert code == 0 and "Failed to load" in out and "orchestrator-broken" in out
    code, out, _ = run("providers", "--json")
    assert json.loads(out)["failed"][0]["reason"] == "import failed: ImportError: x"


def _naming_registry(target: str, emulator: str | None = "named_emulator:App") -> PluginRegistry:
    """Built-ins plus a plugin that names its provider class as ``module:Class``."""
    import types

    import orchestrator

    module = types.ModuleType("p_named")

    @orchestrator.hookimpl
    def register_providers(register: Callable[..., None]) -> None:
        register(target, name="named", aliases=("nm",), emulator=emulator)

    module.register_providers = register_providers  # type: ignore[attr-defined]
    registry = PluginRegistry(entry_points=False)
    registry.register_plugin(module, "named")
    return registry


def test_providers_lists_a_named_class_without_importing_it(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _naming_registry("cli_no_such_module:NamedProvider")
    monkeypatch.setattr("orchestrator.plugins.default_registry", lambda: registry)
    code, out, _ = run("providers")
    assert code == 0 and "Failed to load" not in out
    assert out.splitlines()[2].split() == [
        "named",
        "multi-llm-orchestrator-core",
        "(built-in)",
        "nm",
        "yes",
    ]
    code, out, _ = run("providers", "--json")
    named = json.loads(out)["providers"][1]
    assert (named["class"], named["emulator"]) == (
        "cli_no_such_module.NamedProvider",
        "named_emulator:App",
    )


def test_providers_check_imports_each_class(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _naming_registry("cli_no_such_module:NamedProvider")
    monkeypatch.setattr("orchestrator.plugins.default_registry", lambda: registry)
    code, out, _ = run("providers", "--check")
    assert code == 0 and "Failed to load" in out and "named" not in out.split("Failed")[0]
    assert "No module named 'cli_no_such_module'" in out
    code, out, _ = run("providers", "--check", "--json")
    [failed] = json.loads(out)["failed"]
    assert failed["plugin"] == "named"
    assert failed["reason"].startswith("import failed: ModuleNotFoundError")
    code, out, _ = run("prices", "--json")  # the broken one is left out, the rest priced
    assert code == 0 and [p["provider"] for p in json.loads(out)["providers"]] == ["mock"]


def test_providers_check_lists_the_same_when_every_class_imports(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _naming_registry("orchestrator.providers.mock:MockProvider", emulator=None)
    monkeypatch.setattr("orchestrator.plugins.default_registry", lambda: registry)
    _, listed, _ = run("providers", "--json")
    _, checked, _ = run("providers", "--check", "--json")
    assert json.loads(checked) == json.loads(listed)


def test_providers_imports_no_provider_class() -> None:
    """`orchestrator providers` stays cheap: no provider module, pydantic or HTTP client."""
    code = (
        "import sys; from orchestrator import cli; cli.main(['providers', '--json']); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore', 'pydantic') "
        "or m.endswith(('.provider', '.mock', '.config'))]; "
        "print(bad, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"
    assert "orchestrator.providers.mock.MockProvider" in done.stdout


# -- ask ----------------------------------------------------------------------------------------


def test_ask_streams_the_answer(run: Run, config: Callable[..., Path]) -> None:
    path = config(MOCKS)
    code, out, err = run("ask", "--config", str(path), "hello")
    assert (code, out, err) == (0, "first answers\n", "")


def test_ask_json(run: Run, config: Callable[..., Path]) -> None:
    path = config(MOCKS)
    code, out, _ = run(
        "ask",
        "--config",
        str(path),
        "--json",
        "--provider",
        "second",
        "--model",
        "m-2",
        "--temperature",
        "0.2",
        "--max-tokens",
        "50",
        "hello there",
    )
    data = json.loads(out)
    assert code == 0
    assert data["text"] == "Mock response to: hello there"
    assert data["provider"] == "second" and data["model"] == "m-2"
    assert data["usage"]["total_tokens"] > 0 and data["finish_reason"] == "stop"


def test_ask_strategy_override(run: Run, config: Callable[..., Path]) -> None:
    path = config('strategy = "round-robin"\n' + MOCKS)
    code, out, _ = run("ask", "--config", str(path), "--strategy", "first-available", "x")
    assert code == 0 and out == "first answers\n"
    code, _, err = run("ask", "--config", str(path), "--strategy", "fastest", "x")
    assert code == 2 and "Unknown strategy 'fastest'" in err


def test_ask_reads_stdin(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(MOCKS)
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    code, out, _ = run("ask", "--config", str(path), "--provider", "second")
    assert code == 0 and out == "Mock response to: from stdin\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    code, _, err = run("ask", "--config", str(path), "-")
    assert code == 2 and "prompt is empty" in err


def test_ask_unknown_provider(run: Run, config: Callable[..., Path]) -> None:
    path = config(MOCKS)
    code, out, err = run("ask", "--config", str(path), "--provider", "third", "x")
    assert code == 2 and out == ""
    assert "'third' is not configured" in err and "first, second" in err


def test_ask_uses_orchestrator_toml_in_cwd(run: Run, config: Callable[..., Path]) -> None:
    config('[providers.mock]\nresponse = "found ./orchestrator.toml"\n', name="orchestrator.toml")
    code, out, _ = run("ask", "hi")
    assert code == 0 and out == "found ./orchestrator.toml\n"


def test_ask_without_any_configuration(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_providers(**_: Any) -> Any:
        raise NoProvidersError("No provider has credentials in the environment")

    monkeypatch.setattr("orchestrator.settings.router_from_env", no_providers)
    code, _, err = run("ask", "hi")
    assert code == 2 and "orchestrator demo" in err


def test_ask_config_error_has_location(run: Run, config: Callable[..., Path]) -> None:
    path = config('[providers.mock]\ntimeout = "soon"\n')
    code, _, err = run("ask", "--config", str(path), "hi")
    assert code == 2 and f"providers.mock.timeout ({path}:2)" in err


def test_ask_failure_exits_1_without_secrets(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-cli-secret-000111"
    monkeypatch.setenv("CLI_SECRET", secret)
    path = config('[providers.m]\ntype = "mock"\nmode = "auth_error"\napi_key = "${CLI_SECRET}"\n')
    code, out, err = run("ask", "--config", str(path), f"my key is {secret}")
    assert code == 1 and "AuthenticationError" in err
    assert secret not in out + err


def test_ask_stream_cut_is_reported(run: Run, config: Callable[..., Path]) -> None:
    path = config('[providers.m]\ntype = "mock"\nmode = "stream_failure"\nfail_after_chunks = 2\n')
    code, out, err = run("ask", "--config", str(path), "one two three four")
    assert code == 1
    # The partial answer ends its line, so the error (stderr) is not glued to it on a terminal.
    assert out == "Mock response\n"
    assert "error:" in err and "provider=m" in err


FLAKY = """
strategy = "first-available"

[providers.first]
type = "mock"
mode = "server_error"
max_retries = 1
backoff_base = 0.001

[providers.second]
type = "mock"
"""


def test_ask_verbose_shows_retries_failovers_and_provider_off_a_terminal(
    run: Run, config: Callable[..., Path]
) -> None:
    path = config(FLAKY)
    code, out, err = run("ask", "--config", str(path), "-v", "x")
    assert code == 0 and out == "Mock response to: x\n"
    lines = err.splitlines()
    assert any(line.startswith("info: first failed") and "retry 1" in line for line in lines)
    assert any(line.startswith("info: first failed") and "failing over" in line for line in lines)
    assert lines[-1] == "[second]"
    assert "\033[" not in err
    code, _, err = run("ask", "--config", str(path), "x")
    assert code == 0 and err == ""  # without -v: quiet


def test_ask_model_system_no_stream_and_usage(run: Run, config: Callable[..., Path]) -> None:
    path = config(MOCKS)
    code, out, err = run(
        "ask", "--config", str(path), "--provider", "second", "-m", "m-9", "-s", "be brief",
        "--no-stream", "-u", "hi",
    )  # fmt: skip
    assert code == 0
    assert out.startswith("Mock response to: System: be brief") and "User: hi" in out
    assert err.startswith("[provider second, model m-9, tokens ")
    assert "cost unknown" in err
    code, out, err = run("ask", "--config", str(path), "--provider", "second", "--usage", "hi")
    assert code == 0 and out == "Mock response to: hi\n"
    assert err.startswith("[provider second, model mock-1, tokens ")


def test_ask_options_reach_the_provider(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.providers.mock import MockProvider

    seen: list[Any] = []
    real_stream = MockProvider.stream

    async def stream(self: MockProvider, messages: Any, params: Any = None) -> Any:
        seen.append((params, self.config.timeout))
        async for chunk in real_stream(self, messages, params):
            yield chunk

    monkeypatch.setattr(MockProvider, "stream", stream)
    path = config(MOCKS)
    code, _, err = run(
        "ask", "--config", str(path), "--provider", "second", "-o", "top_p", "0.5",
        "-o", "stop", "END", "--temperature", "0.1", "--max-tokens", "7", "--timeout", "2.5",
        "--deadline", "9", "hi",
    )  # fmt: skip
    assert code == 0, err
    params, timeout = seen[-1]
    assert (params.top_p, params.stop, params.temperature, params.max_tokens) == (
        0.5,
        ["END"],
        0.1,
        7,
    )
    assert timeout == 2.5


def test_ask_deadline_bounds_an_unresponsive_provider(
    run: Run, config: Callable[..., Path]
) -> None:
    path = config('[providers.slow]\ntype = "mock"\nlatency = 60\n')
    code, _, err = run("ask", "--config", str(path), "--deadline", "0.2", "hi")
    assert code == 1 and "deadline of 0.2s exceeded" in err


def test_ask_yandexgpt_model_reaches_the_wire(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's repro: `ask --provider yandexgpt --model yandexgpt` answered from the
    default yandexgpt-lite because the model URI was built once."""
    pytest.importorskip("orchestrator_yandexgpt.emulator")
    from orchestrator.demo import start_emulator

    server, app, emulated = start_emulator("yandexgpt")
    try:
        assert emulated is not None
        monkeypatch.setenv("EMULATED_KEY", str(emulated.api_key))
        path = config(
            "[providers.yandexgpt]\n"
            'api_key = "${EMULATED_KEY}"\n'
            f'base_url = "{server.base_url}"\n'
            f'folder_id = "{emulated.folder_id}"\n'  # type: ignore[attr-defined]
        )
        code, out, err = run(
            "ask", "--config", str(path), "--provider", "yandexgpt", "--model", "yandexgpt",
            "--json", "hi",
        )  # fmt: skip
        assert code == 0, err
        uri = f"gpt://{emulated.folder_id}/yandexgpt/latest"  # type: ignore[attr-defined]
        assert json.loads(out)["model"] == uri
        assert app.requests[-1]["json"]["modelUri"] == uri  # type: ignore[attr-defined]
        code, out, err = run("ask", "--config", str(path), "-m", "not a model!", "hi")
        assert code == 2 and err.count("error:") == 1 and "is not a model name" in err
    finally:
        server.stop()


# -- chat ---------------------------------------------------------------------------------------


class TTYIn(io.StringIO):
    """Standard input that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_chat_keeps_history(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config('[providers.m]\ntype = "mock"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n\nand again\n/exit\nignored\n"))
    code, out, _ = run("chat", "--config", str(path), "--system", "be brief")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("Mock response to: System: be brief")
    assert "User: and again" in out and "Assistant: Mock response" in out
    assert "ignored" not in out


def test_chat_reports_errors_and_continues(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config('[providers.m]\ntype = "mock"\nmode = "server_error"\nmax_retries = 0\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("one\ntwo\n"))
    code, _, err = run("chat", "--config", str(path), "--json")
    # Every turn failed: a script piping turns in learns it from the exit status.
    assert code == 1 and err.count("error:") == 2


def test_chat_succeeds_when_any_turn_was_answered(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(
        '[providers.m]\ntype = "mock"\nmode = "server_error"\nfail_times = 1\nmax_retries = 0\n'
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("one\ntwo\n"))
    code, out, err = run("chat", "--config", str(path), "--json", "--provider", "m")
    assert code == 0 and err.count("error:") == 1 and out.count('"text"') == 1


def test_chat_stream_cut_is_not_kept(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config('[providers.m]\ntype = "mock"\nmode = "stream_failure"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("one two three\n"))
    code, out, err = run("chat", "--config", str(path))
    assert code == 1 and "kept out of the history" in err
    assert out.endswith("\n")  # the partial answer's line is ended before the error


def test_chat_interactive_banner(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config('[providers.m]\ntype = "mock"\n')

    monkeypatch.setattr("sys.stdin", TTYIn("hi\n"))
    code, _, err = run("chat", "--config", str(path))
    assert code == 0 and "Chatting through m (round-robin)" in err


def test_chat_ctrl_c_stops_the_answer_not_the_chat(
    run: Run,
    config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    ctrl_c_when: Callable[[threading.Event], AbstractContextManager[None]],
) -> None:
    from orchestrator.providers.mock import MockProvider

    path = config('[providers.m]\ntype = "mock"\n')
    answering = threading.Event()
    cancelled = threading.Event()
    real_stream = MockProvider.stream

    async def stream(self: MockProvider, messages: Any, params: Any = None) -> Any:
        if "slow" not in messages[-1].content:
            async for chunk in real_stream(self, messages, params):
                yield chunk
            return
        answering.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        yield  # pragma: no cover - makes this an async generator

    monkeypatch.setattr(MockProvider, "stream", stream)

    monkeypatch.setattr("sys.stdin", TTYIn("slow question\nhi\n"))
    with ctrl_c_when(answering):
        code, out, err = run("chat", "--config", str(path))
    assert code == 0
    assert "interrupted" in err
    assert cancelled.wait(10), "the interrupted request kept running"
    # The next turn is answered, and the interrupted question is not in its history (the mock
    # renders a one-message conversation as that message alone).
    assert "Mock response to: hi\n" in out


# -- health -------------------------------------------------------------------------------------


def test_health(run: Run, config: Callable[..., Path]) -> None:
    path = config(MOCKS)
    code, out, _ = run("health", "--config", str(path))
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [
        ["first", "MockProvider", "healthy"],
        ["second", "MockProvider", "healthy"],
    ]


def test_health_unhealthy_json(run: Run, config: Callable[..., Path]) -> None:
    path = config(MOCKS + 'mode = "auth_error"\n')
    code, out, _ = run("health", "--config", str(path), "--json")
    data = json.loads(out)["providers"]
    assert code == 1
    assert [(p["name"], p["healthy"]) for p in data] == [("first", True), ("second", False)]
    assert all(p["latency"] >= 0 for p in data)
    # Why it is unhealthy, not only on stderr.
    assert data[0]["error"] is None
    assert data[1]["error"] == "mode = 'auth_error' answers every call with an error"


def test_health_shows_the_reason_in_the_table(run: Run, config: Callable[..., Path]) -> None:
    path = config(MOCKS + 'mode = "auth_error"\n')
    code, out, err = run("health", "--config", str(path))
    assert code == 1 and err == ""
    row = out.splitlines()[2]
    assert row.split()[:3] == ["second", "MockProvider", "UNHEALTHY"]
    assert row.endswith("mode = 'auth_error' answers every call with an error")


def test_health_reason_from_a_real_plugin(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("orchestrator_gigachat.emulator")
    from orchestrator.demo import start_emulator

    server, app, emulated = start_emulator("gigachat")
    try:
        assert emulated is not None
        app.outage = True  # type: ignore[attr-defined]
        monkeypatch.setenv("EMULATED_KEY", str(emulated.api_key))
        path = config(
            "[providers.gigachat]\n"
            'api_key = "${EMULATED_KEY}"\n'
            f'base_url = "{emulated.base_url}"\n'
            f'auth_url = "{emulated.auth_url}"\n'  # type: ignore[attr-defined]
            "max_retries = 0\n"
        )
        code, out, _ = run("health", "--config", str(path), "--json")
        data = json.loads(out)["providers"][0]
        assert code == 1 and data["healthy"] is False
        assert data["error"] and "503" in data["error"]
        assert str(emulated.api_key) not in out
    finally:
        server.stop()


def test_health_check_that_raises(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.providers.mock import MockProvider

    async def boom(self: Any) -> bool:
        raise RuntimeError("health endpoint exploded")

    monkeypatch.setattr(MockProvider, "health_check", boom)
    path = config(MOCKS)
    code, out, _ = run("health", "--config", str(path))
    assert code == 1 and "UNHEALTHY" in out and "RuntimeError: health endpoint exploded" in out


# -- emulate and demo -------------------------------------------------------------------------


def _interrupt_long_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if seconds >= 60:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)


@pytest.mark.parametrize("vendor", ["gigachat", "yandexgpt"])
def test_emulate(run: Run, monkeypatch: pytest.MonkeyPatch, vendor: str) -> None:
    pytest.importorskip(f"orchestrator_{vendor}.emulator")
    _interrupt_long_sleeps(monkeypatch)
    code, out, err = run("emulate", vendor)
    assert code == cli.EXIT_INTERRUPTED  # Ctrl-C: 130, as documented
    assert f"{vendor} emulator listening on http://127.0.0.1:" in out
    assert f"[providers.{vendor}]" in out and "export " in out
    assert "Ctrl-C" in err and "stopped" in err


def test_emulate_tls(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("orchestrator_gigachat.emulator")
    _interrupt_long_sleeps(monkeypatch)
    code, out, _ = run("emulate", "gigachat", "--tls")
    assert code == 130 and "https://127.0.0.1:" in out and "TLS CA certificate:" in out
    ca_file = out.split("TLS CA certificate: ", 1)[1].splitlines()[0]
    assert not Path(ca_file).exists()


@pytest.mark.slow
def test_emulate_tls_cleans_up_on_sigterm(tmp_path: Path) -> None:
    """`emulate --tls` stopped by SIGTERM (a service manager, `timeout`, `kill`) removes its
    orchestrator-tls-* directory and exits 143."""
    pytest.importorskip("orchestrator_gigachat.emulator")
    import os
    import signal

    env = {**os.environ, "TMPDIR": str(tmp_path), "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "emulate", "gigachat", "--tls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert "https://127.0.0.1:" in lines[0], lines
        ca_file = Path(lines[1].split("TLS CA certificate: ", 1)[1].strip())
        assert ca_file.exists() and ca_file.parent.name.startswith("orchestrator-tls-")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == cli.EXIT_TERMINATED, err
    assert "Traceback" not in err
    assert not ca_file.exists()
    assert list(tmp_path.glob("orchestrator-tls-*")) == []


def test_emulate_without_emulator(run: Run) -> None:
    code, _, err = run("emulate", "mock")
    assert code == 2 and "ships no emulator" in err
    code, _, err = run("emulate", "nosuchvendor")
    assert code == 2 and "Unknown provider 'nosuchvendor'" in err


def test_demo_command_passes_options(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run_demo(**options: Any) -> int:
        seen.update(options)
        return 0

    monkeypatch.setattr("orchestrator.demo.run_demo", fake_run_demo)
    code, _, _ = run("demo", "--requests", "30", "--plain", "--seed", "3")
    assert code == 0 and seen == {"requests": 30, "plain": True, "seed": 3}


@pytest.mark.parametrize("requests", ["0", "-1", "6", "29", "many"])
def test_demo_refuses_a_workload_too_small_for_its_phases(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, requests: str
) -> None:
    monkeypatch.setattr("orchestrator.demo.run_demo", lambda **_: pytest.fail("ran"))
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--requests", requests])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "argument --requests:" in err and ("at least 30" in err or "whole number" in err)


def test_interrupt_exits_130(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(**_: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("orchestrator.demo.run_demo", interrupted)
    code, _, _ = run("demo")
    assert code == 130


def test_broken_pipe(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> int:
        raise BrokenPipeError

    monkeypatch.setattr("orchestrator.demo.run_demo", broken)
    code, _, _ = run("demo")
    assert code == 1


# -- every bad input is one `error:` line, exit 2 -----------------------------------------------


def _run_any(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``cli.main`` with argparse's own exits (SystemExit) turned into a code."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> None:
    assert "Traceback" not in err, err
    assert [line for line in err.splitlines() if "error:" in line] == [
        next(line for line in err.splitlines() if "error:" in line)
    ], err


#: A bad value for every option that takes one. Options whose value is free text say so
#: (None): any text is a valid model name, system message, ... for some provider.
BAD_FLAG_VALUES: dict[str, list[str] | None] = {
    "--config": ["missing.toml"],
    "--strategy": ["fastest"],
    "--provider": ["third"],
    "--model": None,  # checked by the provider: see test_ask_yandexgpt_model_reaches_the_wire
    "--system": None,
    "--temperature": ["3", "-1", "hot", "nan"],
    "--max-tokens": ["0", "-5", "1.5"],
    "--option": ["top_p 5", "max_tokens 0", "temperature warm", "nope 1", 'stop [""]'],
    "--timeout": ["0", "-1", "soon", "inf"],
    "--deadline": ["0", "-3", "soon"],
    "--requests": ["0", "-1", "6", "many"],
    "--seed": ["x"],
    "--port": ["-1", "70000", "http"],
    "--host": None,  # any address to bind; the OS refuses what it cannot bind
    "--interval": ["0", "-1", "soon"],
}

_COMMANDS = {
    "ask": ["ask", "hi"],
    "chat": ["chat"],
    "health": ["health"],
    "demo": ["demo"],
    "emulate": ["emulate", "gigachat"],
    "metrics": ["metrics"],
}


def _options_with_values() -> dict[str, str]:
    """Every option of every command that takes a value -> a command that has it."""
    found: dict[str, str] = {}
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.option_strings and action.nargs != 0:
                found.setdefault(max(action.option_strings, key=len), name)
    return found


def test_every_option_with_a_value_has_a_bad_value_row() -> None:
    assert set(_options_with_values()) == set(BAD_FLAG_VALUES)


@pytest.mark.parametrize(
    ("flag", "value"),
    [(flag, value) for flag, values in BAD_FLAG_VALUES.items() for value in values or []],
)
def test_a_bad_flag_value_is_one_error_line(
    flag: str,
    value: str,
    config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("orchestrator.demo.run_demo", lambda **_: pytest.fail("ran"))
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n"))
    path = config(MOCKS)
    command = _options_with_values()[flag]
    argv = [*_COMMANDS[command][:1], flag, *value.split(" "), *_COMMANDS[command][1:]]
    if command in ("ask", "chat", "health") and flag != "--config":
        argv[1:1] = ["--config", str(path)]
    code, out, err = _run_any(argv, capsys)
    assert code == cli.EXIT_USAGE, (argv, out, err)
    _one_error_line(err)
    assert flag in err or flag.lstrip("-") in err or "-o" in err or value in err


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("hedge_after = -1\n" + MOCKS, "hedge_after"),
        ('[providers.a]\ntype = "mock"\nname = "x"\n[providers.b]\ntype = "mock"\nname = "x"\n',
         "providers.b.name"),
        ("deadline = 0\n" + MOCKS, "deadline"),
        ('[providers.m]\ntype = "mock"\ntimeout = "soon"\n', "providers.m.timeout"),
    ],
)  # fmt: skip
def test_a_bad_config_file_value_is_one_error_line(
    table: str,
    key: str,
    config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(table)
    code, _, err = _run_any(["ask", "--config", str(path), "hi"], capsys)
    assert code == cli.EXIT_USAGE
    _one_error_line(err)
    assert f"{key} ({path}:" in err


def _plugin_env_vars() -> dict[str, str]:
    """Every environment variable the vendor plugins read -> its vendor, from their config
    modules (GigaChat keys ENV_VARS by field, YandexGPT by variable)."""
    gigachat = pytest.importorskip("orchestrator_gigachat.config")
    yandexgpt = pytest.importorskip("orchestrator_yandexgpt.config")
    found = dict.fromkeys(gigachat.ENV_VARS.values(), "gigachat")
    found.update(dict.fromkeys(yandexgpt.ENV_VARS, "yandexgpt"))
    return found


def _client_certificate(folder: Path) -> tuple[str, str]:
    """A client certificate and its private key encrypted with the password 'right'."""
    import trustme
    from cryptography.hazmat.primitives import serialization

    issued = trustme.CA().issue_cert("client.example")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right"),
    )
    cert_file, key_file = folder / "client.pem", folder / "client.key"
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    key_file.write_bytes(encrypted)
    return str(cert_file), str(key_file)


#: variable -> (bad value, exit code). 2: refused before any request, naming the variable;
#: 1: only the vendor can tell (a wrong key, an unknown model): the request fails with one
#: `error:` line. ``{cert}``/``{key}`` are a real client certificate and encrypted key.
BAD_ENV_VALUES: dict[str, tuple[str, int]] = {
    "GIGACHAT_CREDENTIALS": ("d3Jvbmc6d3Jvbmc=", 1),
    "GIGACHAT_SCOPE": ("BOGUS", 2),
    "GIGACHAT_BASE_URL": ("not-a-url", 2),
    "GIGACHAT_AUTH_URL": ("https://host:port/oauth", 2),
    "GIGACHAT_MODEL": ("GigaChat-0-Nope", 1),
    "GIGACHAT_ACCESS_TOKEN": ("not-a-token", 1),
    "GIGACHAT_USER": ("nobody", 1),
    "GIGACHAT_PASSWORD": ("wrong-password", 1),
    "GIGACHAT_VERIFY_SSL_CERTS": ("maybe", 2),
    "GIGACHAT_CA_BUNDLE_FILE": ("/nonexistent/ca.pem", 2),
    "GIGACHAT_CERT_FILE": ("/nonexistent/cert.pem", 2),
    "GIGACHAT_KEY_FILE": ("/nonexistent/key.pem", 2),
    "GIGACHAT_KEY_FILE_PASSWORD": ("wrong", 2),
    "GIGACHAT_TIMEOUT": ("abc", 2),
    "YC_API_KEY": ("AQVN-wrong-key", 1),
    "YC_IAM_TOKEN": ("t1.wrong-token", 1),
    "YC_OAUTH_TOKEN": ("y0_wrong-token", 1),
    "YC_TOKEN": ("t1.wrong-token", 1),
    "YC_SERVICE_ACCOUNT_KEY_FILE": ("/nonexistent/key.json", 2),
    "YC_FOLDER_ID": ("my folder", 2),
    "YANDEXGPT_BASE_URL": ("::::", 2),
    "YANDEXGPT_AUTH": ("password", 2),
}


@pytest.fixture(scope="module")
def emulated_env() -> Iterator[dict[str, dict[str, str]]]:
    """Each vendor's emulator, and the environment that points that vendor at it."""
    pytest.importorskip("orchestrator_gigachat.emulator")
    pytest.importorskip("orchestrator_yandexgpt.emulator")
    from orchestrator.demo import describe_emulator, start_emulator

    servers, envs = [], {}
    try:
        for vendor in ("gigachat", "yandexgpt"):
            server, _, emulated = start_emulator(vendor)
            servers.append(server)
            text = describe_emulator(vendor, server, emulated)
            envs[vendor] = {
                line.split(" ", 1)[1].split("=", 1)[0]: line.split("=", 1)[1].strip("'")
                for line in text.splitlines()
                if line.startswith("export ")
            }
        yield envs
    finally:
        for server in servers:
            server.stop()


def test_every_plugin_env_var_has_a_bad_value_row() -> None:
    assert set(BAD_ENV_VALUES) == set(_plugin_env_vars())


@pytest.mark.parametrize("variable", sorted(BAD_ENV_VALUES))
def test_a_bad_env_value_is_one_error_line(
    variable: str,
    emulated_env: dict[str, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    vendor = _plugin_env_vars()[variable]
    for name in _plugin_env_vars():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./orchestrator.toml: the router comes from the environment
    # The IAM exchange of an OAuth token goes to Yandex's host: a closed proxy keeps it local.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    env = dict(emulated_env[vendor])
    if variable in ("GIGACHAT_ACCESS_TOKEN", "GIGACHAT_USER", "GIGACHAT_PASSWORD"):
        del env["GIGACHAT_CREDENTIALS"]  # the credential under test is the only one
        if variable != "GIGACHAT_ACCESS_TOKEN":
            env["GIGACHAT_USER"], env["GIGACHAT_PASSWORD"] = "user-1", "pass-1234"
    if variable.startswith("YC_") and variable.endswith(("TOKEN", "KEY_FILE")):
        del env["YC_API_KEY"]
    value, expected = BAD_ENV_VALUES[variable]
    if variable in ("GIGACHAT_KEY_FILE", "GIGACHAT_KEY_FILE_PASSWORD"):
        env["GIGACHAT_CERT_FILE"], env["GIGACHAT_KEY_FILE"] = _client_certificate(tmp_path)
        env["GIGACHAT_KEY_FILE_PASSWORD"] = "right"
    env[variable] = value
    for name, text in env.items():
        monkeypatch.setenv(name, text)
    code, out, err = _run_any(["ask", "--deadline", "10", "hi"], capsys)
    assert code == expected, (variable, out, err)
    _one_error_line(err)
    if expected == cli.EXIT_USAGE:
        # The variable, or the setting it fills (with the offending path): the source.
        from orchestrator_gigachat.config import ENV_VARS

        fields = {var: field for field, var in ENV_VARS.items()}
        assert variable in err or fields.get(variable, variable) in err, err
