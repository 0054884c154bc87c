"""The `orchestrator` command: help, exit codes, stderr, colour, each subcommand."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
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
    assert out == "Mock response"
    assert "error:" in err and "provider=m" in err


def test_ask_verbose_names_provider_on_terminal(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(MOCKS)
    monkeypatch.setattr(cli, "use_color", lambda stream: True)
    code, _, err = run("ask", "--config", str(path), "-v", "x")
    assert code == 0 and "[first]" in err


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
    assert code == 0 and err.count("error:") == 2


def test_chat_stream_cut_is_not_kept(
    run: Run, config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config('[providers.m]\ntype = "mock"\nmode = "stream_failure"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("one two three\n"))
    code, _, err = run("chat", "--config", str(path))
    assert code == 0 and "kept out of the history" in err


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
    assert code == 0
    assert f"{vendor} emulator listening on http://127.0.0.1:" in out
    assert f"[providers.{vendor}]" in out and "export " in out
    assert "Ctrl-C" in err and "stopped" in err


def test_emulate_tls(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("orchestrator_gigachat.emulator")
    _interrupt_long_sleeps(monkeypatch)
    code, out, _ = run("emulate", "gigachat", "--tls")
    assert code == 0 and "https://127.0.0.1:" in out and "TLS CA certificate:" in out


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
