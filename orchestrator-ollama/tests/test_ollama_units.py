"""Units: OLLAMA_HOST parsing, the config, the NDJSON reader, the emulator's wire and CLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import cli
from orchestrator.testing import LoopbackServer, ScriptableApp
from orchestrator_ollama import OllamaConfig, OllamaProvider, parse_host
from orchestrator_ollama.emulator import VERSION, OllamaEmulator, main, normalise
from orchestrator_ollama.errors import error_text, retry_after_of
from orchestrator_ollama.lines import LineReader

HOSTS = [
    None,
    "",
    "1.2.3.4",
    ":56789",
    "1.2.3.4:56789",
    "http://1.2.3.4",
    "https://1.2.3.4",
    "https://1.2.3.4:56789",
    "example.com",
    "example.com:56789/",
    "example.com/path",
    "https://example.com:56789/path/",
    "[0001:002:003:0004::1]",
    "[0001:002:003:0004::1]:56789/path",
    "https://[0001:002:003:0004::1]",
    "0.0.0.0",  # noqa: S104 - a string parsed, nothing bound
]


@pytest.mark.parametrize("host", HOSTS)
def test_parse_host_is_the_clients(host: str | None) -> None:
    client = pytest.importorskip("ollama._client")
    assert parse_host(host) == client._parse_host(host)


def test_config_reads_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0")  # noqa: S104 - parsed, nothing bound
    monkeypatch.setenv("OLLAMA_API_KEY", "cloud-key-000000")
    config = OllamaConfig()
    assert config.base_url == "http://0.0.0.0:11434"
    assert config.api_key == "cloud-key-000000"
    assert "cloud-key-000000" not in repr(config)
    assert OllamaConfig(base_url="gpu-box:8080").base_url == "http://gpu-box:8080"
    found = OllamaProvider.config_from_env("ollama")
    assert found is not None and found.base_url == "http://0.0.0.0:11434"


def test_config_from_env_needs_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    assert OllamaProvider.config_from_env("ollama") is None


@given(
    lines=st.lists(st.text(alphabet="ab é\r\u2028\x85{}", min_size=1), max_size=6),
    cut=st.integers(min_value=1, max_value=7),
)
@pytest.mark.anyio
async def test_line_reader_any_chunking(lines: list[str], cut: int) -> None:
    raw = "".join(f"{line}\n" for line in lines).encode()

    async def chunks():
        for i in range(0, len(raw), cut):
            yield raw[i : i + cut]

    reader = LineReader(chunks())
    got = []
    while (line := await reader.next_line()) is not None:
        got.append(line)
    # Blank means ASCII whitespace only (what JSON ignores); U+0085 stays inside a line.
    expected = [line.removesuffix("\r") for line in lines]
    assert got == [line for line in expected if line.encode().strip()]


@pytest.mark.anyio
async def test_line_reader_last_line_without_newline() -> None:
    async def chunks():
        yield b'{"a": 1}\n{"b"'
        yield b": 2}"

    reader = LineReader(chunks())
    assert [await reader.next_line() for _ in range(3)] == ['{"a": 1}', '{"b": 2}', None]


def test_error_text_and_retry_after() -> None:
    assert error_text('{"error": "model \'x\' not found"}') == "model 'x' not found"
    assert error_text('{"error": {"message": "nested"}}') == "nested"
    assert error_text("  plain\n text ") == "plain text"
    assert error_text("") == "no message"
    assert retry_after_of({"retry-after": "2.5"}) == 2.5
    assert retry_after_of({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_of({"retry-after": "soon"}) is None
    assert retry_after_of({}) is None


def test_normalise() -> None:
    assert normalise("llama3.2") == "llama3.2:latest"
    assert normalise("qwen2.5:0.5b") == "qwen2.5:0.5b"
    assert normalise("hf.co/org/model") == "hf.co/org/model:latest"


# -- the emulator's wire ------------------------------------------------------------------------


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url) as http:
        yield http


def test_is_a_scriptable_app(emulator: OllamaEmulator) -> None:
    assert isinstance(emulator, ScriptableApp)


def test_root_version_and_stream_default(client: httpx.Client) -> None:
    assert client.get("/").text == "Ollama is running"
    assert client.head("/").status_code == 200
    assert client.get("/api/version").json() == {"version": VERSION}
    response = client.post(
        "/api/chat", json={"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.count("\n") > 1  # streamed, the server's default


def test_empty_messages_load_the_model(client: httpx.Client) -> None:
    response = client.post("/api/chat", json={"model": "llama3.2", "stream": False})
    assert response.json()["done_reason"] == "load"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([1], "invalid request body"),
        ({"model": ""}, "model is required"),
        ({"messages": "x"}, "must be a list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "invalid role"),
        ({"messages": [{"role": "user", "content": 1}]}, "must be a string"),
        ({"messages": [{"role": "user", "content": "x", "images": ["%%%"]}]}, "base64"),
        ({"tools": {}}, "tools must be a list"),
        ({"options": []}, "options must be an object"),
        ({"options": {"temperature": True}}, "temperature"),
        ({"format": "yaml"}, "invalid format"),
    ],
)
def test_validation(client: httpx.Client, body: object, fragment: str) -> None:
    payload = body
    if isinstance(body, dict):
        payload = {"model": "llama3.2", "stream": False, **body}
    response = client.post("/api/chat", json=payload)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_not_json(client: httpx.Client) -> None:
    assert client.post("/api/chat", content=b"{").status_code == 400
    assert client.post("/api/show", content=b"{").status_code == 400


def test_show(client: httpx.Client) -> None:
    shown = client.post("/api/show", json={"model": "nomic-embed-text"}).json()
    assert shown["capabilities"] == ["embedding"]
    assert client.post("/api/show", json={"model": "nope"}).status_code == 404


def test_custom_models_and_unknown_tag() -> None:
    app = OllamaEmulator(models=["phi3", "mistral:7b"])
    assert app.models == ("phi3:latest", "mistral:7b")
    with LoopbackServer(app) as server:
        tags = httpx.get(f"{server.base_url}/api/tags").json()["models"]
    assert tags[0]["details"]["family"] == "llama"


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    stop.set()
    assert main(["--tls"], stop=stop) == 0
    out = capsys.readouterr().out
    assert "export OLLAMA_HOST=https://127.0.0.1:" in out
    assert "SSL_CERT_FILE" in out


def test_orchestrator_emulate_ollama(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if seconds >= 60:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    assert cli.main(["emulate", "ollama"]) == 130  # Ctrl-C, as a shell reports it
    out = capsys.readouterr().out
    assert "ollama emulator listening on http://127.0.0.1:" in out
    assert "export OLLAMA_HOST='http://127.0.0.1:" in out
    assert "[providers.ollama]" in out
