"""`orchestrator serve`: configuration from orchestrator.toml, keys never kept in clear, and a
graceful shutdown that lets in-flight streams finish."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from orchestrator import cli
from orchestrator.errors import ConfigurationError
from orchestrator_gateway import __main__ as gateway_main
from orchestrator_gateway import hash_key
from orchestrator_gateway.config import load_gateway_settings
from orchestrator_gateway.keys import LocalKeyState, SharedKeyState
from orchestrator_gateway.server import app_from_config, key_state_for, server_for

KEY = "sk-from-env-0123456789"

CONFIG = """
strategy = "first-available"

[providers.mock]
latency = 0.0

[gateway]
port = 0
shutdown_timeout = 5

[gateway.keys.ci]
key_env = "GATEWAY_TEST_KEY"
models = ["default", "quick"]

[gateway.models.quick]
providers = ["mock"]
strategy = "round-robin"
"""


def test_app_from_config(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text(CONFIG)
    app = app_from_config(path, env={"GATEWAY_TEST_KEY": KEY})
    assert set(app.targets) == {"default", "quick", "mock/mock-1"}
    assert app.targets["quick"].router.strategy_name == "round-robin"
    assert app.owns_router
    assert isinstance(app.key_state, LocalKeyState)
    # Only the hash is kept.
    assert KEY not in repr(vars(app.keyring))
    assert hash_key(KEY) in app.keyring._by_hash


def test_missing_key_env_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigurationError, match="GATEWAY_TEST_KEY is not set"):
        app_from_config(path, env={})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "no API keys"),
        ({"keys": {"a": {}}}, "exactly one of key_sha256 and key_env"),
        ({"keys": {"a": {"key_sha256": "xyz"}}}, "64 hex digits"),
        ({"keys": {"a": {"key_env": "A", "key": "sk-123"}}}, r"gateway\.keys\.a\.key: unknown key"),
        (
            {"allow_unauthenticated": True, "models": {"bad name": {"providers": ["a"]}}},
            "model name",
        ),
        ({"allow_unauthenticated": True, "models": {"default": {"providers": ["a"]}}}, "rename"),
    ],
)
def test_gateway_table_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_gateway_settings(table)


def test_two_keys_with_the_same_secret_are_refused() -> None:
    settings = load_gateway_settings(
        {"keys": {"a": {"key_env": "A"}, "b": {"key_sha256": hash_key("same")}}}
    )
    with pytest.raises(ConfigurationError, match="same key"):
        settings.key_hashes({"A": "same"})


def test_gateway_table_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text('gateway = "yes"\n[providers.mock]\n')
    with pytest.raises(ConfigurationError):
        app_from_config(path)


def test_hash_key_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("sk-abc\n"))
    assert gateway_main.main(["hash-key"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("sk-abc")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert gateway_main.main(["hash-key"]) == 1
    assert gateway_main.main(["sk-on-the-command-line"]) == 2


def test_key_state_hook_uses_a_shared_backend_when_the_router_has_one(
    kit: SimpleNamespace,
) -> None:
    router = kit.router(kit.Scripted("a"))
    assert isinstance(key_state_for(router), LocalKeyState)
    shared = SimpleNamespace(acquire=lambda *args: None)
    router.state = shared
    state = key_state_for(router)
    assert isinstance(state, SharedKeyState) and state.state is shared


def test_cli_serve_needs_the_gateway(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setitem(sys.modules, "orchestrator_gateway.server", None)
    assert cli.main(["serve", "--config", "x.toml"]) == 2
    assert "pip install orchestrator-gateway" in capsys.readouterr().err


def test_cli_serve_runs_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator_gateway import server

    calls: list[Any] = []
    monkeypatch.setattr(server, "serve", lambda *a, **k: calls.append((a, k)) or 0)
    assert cli.main(["serve", "--config", "o.toml", "--port", "9000"]) == 0
    assert calls == [(("o.toml",), {"host": None, "port": 9000})]


def test_bind_reports_a_busy_port() -> None:
    from orchestrator_gateway.server import bind

    taken = bind("127.0.0.1", 0)
    try:
        taken.listen()
        with pytest.raises(ConfigurationError, match=r"cannot listen on 127\.0\.0\.1"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
    try:
        six = bind("::1", 0)
    except ConfigurationError:  # no IPv6 on this machine
        return
    assert six.family == socket.AF_INET6
    six.close()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_graceful_shutdown_finishes_a_stream_in_flight(
    kit: SimpleNamespace, gateway_for: Any
) -> None:
    app = gateway_for(kit.router(kit.Scripted("a", "one two three", pause=0.2)))
    server = server_for(app)
    server.config.log_level = "warning"
    sock = _free_socket()
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    until = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < until and thread.is_alive()
        time.sleep(0.01)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=kit.KEY, max_retries=0)
    try:
        stream = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}], stream=True
        )
        chunks = iter(stream)
        first = next(chunks)
        server.handle_exit(signal.SIGTERM, None)  # what SIGTERM does
        assert app.shutting_down
        rest = list(chunks)
        text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
        assert text == "one two three"
        assert rest[-1].choices[0].finish_reason == "stop"
    finally:
        client.close()
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive()


@pytest.mark.slow
def test_orchestrator_serve_process(tmp_path: Path) -> None:
    """The real command: starts from a file, answers the official client, and on SIGTERM
    finishes the stream in flight before it exits."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    path = tmp_path / "orchestrator.toml"
    path.write_text(CONFIG.replace("latency = 0.0", "latency = 0.3"))
    env = {**os.environ, "GATEWAY_TEST_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--config", str(path), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        until = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/liveliness").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < until, "the gateway did not start"
            time.sleep(0.1)
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0
        ) as client:
            stream = client.chat.completions.create(
                model="quick", messages=[{"role": "user", "content": "ping"}], stream=True
            )
            chunks = iter(stream)
            first = next(chunks)
            process.send_signal(signal.SIGTERM)
            rest = list(chunks)
        text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
        assert "ping" in text
        # uvicorn re-raises the signal once drained: the parent sees "terminated by SIGTERM".
        assert process.wait(timeout=20) == -signal.SIGTERM
        assert process.stderr is not None and process.stdout is not None
        log = process.stdout.read() + process.stderr.read()
        assert b"POST /v1/chat/completions" in log  # uvicorn's access log...
        assert KEY.encode() not in log  # ...never shows the key
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
