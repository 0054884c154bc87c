"""Units: the SSE line splitter, the error boundary, the config and the emulator's CLI."""

from __future__ import annotations

import email.utils
import threading
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import cli
from orchestrator.errors import RateLimitError
from orchestrator.sse import EventReader, LineSplitter
from orchestrator_openai import OpenAIConfig, OpenAIProvider
from orchestrator_openai.config import YANDEX_BASE_URL, parse_custom_headers
from orchestrator_openai.emulator import TEST_API_KEY, OpenAIEmulator, main
from orchestrator_openai.errors import (
    MAX_RETRY_AFTER,
    api_error,
    error_fields,
    retry_after_of,
    should_retry,
)

OPENAI_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_CUSTOM_HEADERS",
    "YC_API_KEY",
    "YC_FOLDER_ID",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in OPENAI_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


# -- lines -----------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(["a", "\u0431", " ", "\r", "\n", "\u2028", "\x85", ":"]))


def _reference(text: str) -> list[str]:
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = normalised.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


@given(text=_TEXT, cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_splitter_matches_splitting_the_whole_text(text: str, cuts: list[int]) -> None:
    splitter = LineSplitter()
    lines: list[str] = []
    start = 0
    for cut in sorted(cuts):
        lines += splitter.feed(text[start:cut])
        start = max(start, cut)
    lines += splitter.feed(text[start:])
    lines += splitter.flush()
    assert lines == _reference(text)


def test_splitter_keeps_unicode_line_separators_inside_lines() -> None:
    # str.splitlines (httpx's aiter_lines) would split this JSON in three.
    assert LineSplitter().feed('data: {"a": "x\u2028y\x85z"}\n') == ['data: {"a": "x\u2028y\x85z"}']


def test_long_line_in_single_bytes_is_one_line() -> None:
    splitter = LineSplitter()
    out: list[str] = []
    for _ in range(200_000):
        out += splitter.feed("x")
    out += splitter.feed("\n")
    assert out == ["x" * 200_000]


@pytest.mark.anyio
@given(cut=st.integers(min_value=1, max_value=40))
async def test_event_reader_over_any_chunking(cut: int) -> None:
    raw = (
        'data: {"n": "é"}\r\n\r\n: comment\nevent: x\nid: 1\ndata: a\ndata: b\n\ndata: [DONE]'
    ).encode()

    async def chunks():
        for i in range(0, len(raw), cut):
            yield raw[i : i + cut]

    reader = EventReader(chunks())
    assert [await reader.next_data() for _ in range(4)] == ['{"n": "é"}', "a\nb", "[DONE]", None]


# -- errors ------------------------------------------------------------------------------------


def test_retry_after_parsing_as_the_sdk() -> None:
    assert retry_after_of({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_of({"retry-after": "1.5"}) == 1.5
    assert retry_after_of({"retry-after-ms": "soon", "retry-after": "2"}) == 2
    assert retry_after_of({"retry-after": "1e999"}) == MAX_RETRY_AFTER + 1
    assert retry_after_of({"retry-after": "nan"}) is None
    assert retry_after_of({}) is None
    assert retry_after_of({"retry-after": "not a date"}) is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_of({"retry-after": date}, now=now) == pytest.approx(30, abs=1)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {}, True),
        (408, {}, True),
        (409, {}, True),
        (500, {}, True),
        (400, {}, False),
        (400, {"x-should-retry": "true"}, True),
        (503, {"x-should-retry": "false"}, False),
        (429, {"retry-after": "121"}, False),
        (429, {"retry-after": "120", "x-should-retry": "true"}, True),
        (429, {"retry-after": "500", "x-should-retry": "true"}, False),
    ],
)
def test_should_retry_order(status: int, headers: dict[str, str], expected: bool) -> None:
    assert should_retry(status, headers) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"error": {"message": "m", "type": "t", "code": 7}}', ("m", "t", "7")),
        ('{"error": "plain"}', ("plain", None, None)),
        ('{"detail": "fastapi style"}', ("fastapi style", None, None)),
        ('{"message": "top level"}', ("top level", None, None)),
        ("<html>\n 502  Bad Gateway </html>", ("<html> 502 Bad Gateway </html>", None, None)),
        ("", ("no message", None, None)),
        ("[1, 2]", ("[1, 2]", None, None)),
    ],
)
def test_error_fields(text: str, expected: tuple[str, str | None, str | None]) -> None:
    assert error_fields(text) == expected


def test_api_error_negative_retry_after_is_dropped() -> None:
    request = httpx.Request("POST", "http://x/v1/chat/completions")
    response = httpx.Response(429, headers={"retry-after": "-3"}, text="{}", request=request)
    error = api_error(response, provider="p")
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None
    assert error.transient


# -- config ------------------------------------------------------------------------------------


def test_config_reads_the_sdks_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_API_KEY", "sk-env-0000000000")
    clean_env.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1/")
    clean_env.setenv("OPENAI_ORG_ID", "org-env")
    clean_env.setenv("OPENAI_PROJECT_ID", "proj-env")
    clean_env.setenv("OPENAI_CUSTOM_HEADERS", "X-One: 1\nX-Two:two\nbroken")
    config = OpenAIConfig()
    assert config.api_key == "sk-env-0000000000"
    assert "sk-env-0000000000" not in repr(config)
    assert config.base_url == "http://localhost:8000/v1"
    assert (config.organization, config.project) == ("org-env", "proj-env")
    assert config.extra_headers == {"X-One": "1", "X-Two": "two"}
    assert OpenAIConfig(api_key=None, base_url=None).api_key is None  # explicit wins
    found = OpenAIProvider.config_from_env("openai")
    assert found is not None and found.api_key == "sk-env-0000000000"


def test_config_from_env_needs_a_key(clean_env: pytest.MonkeyPatch) -> None:
    assert OpenAIProvider.config_from_env("openai") is None


def test_credential_headers_stay_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(
        "OPENAI_CUSTOM_HEADERS", "X-Api-Key: hdr-secret-123\nHTTP-Referer: https://app"
    )
    config = OpenAIConfig(base_url="http://x/v1")
    assert config.extra_headers["X-Api-Key"] == "hdr-secret-123"
    assert "hdr-secret-123" not in repr(config)
    assert config.model_dump()["extra_headers"] == {
        "X-Api-Key": "***",
        "HTTP-Referer": "https://app",
    }
    assert "hdr-secret-123" not in config.model_dump_json()
    assert "hdr-secret-123" not in str(RateLimitError("echoed hdr-secret-123"))


def test_parse_custom_headers() -> None:
    assert parse_custom_headers("A: b: c\n: x\nB:") == {"A": "b: c", "B": ""}


def test_base_url_must_be_http(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="http"):
        OpenAIConfig(base_url="localhost:8000/v1")


def test_yandex_preset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_BASE_URL", "http://not-for-yandex/v1")
    config = OpenAIConfig.yandex("b1gfolder", "AQVN-key-000000")
    assert config.base_url == YANDEX_BASE_URL
    assert config.model == "gpt://b1gfolder/yandexgpt/latest"
    assert (config.project, config.auth_scheme, config.stream_usage) == (
        "b1gfolder",
        "Api-Key",
        False,
    )
    provider = OpenAIProvider(config)
    assert provider._headers["Authorization"] == "Api-Key AQVN-key-000000"
    assert provider._headers["OpenAI-Project"] == "b1gfolder"

    clean_env.setenv("YC_FOLDER_ID", "b1genv")
    clean_env.setenv("YC_API_KEY", "AQVN-env-000000")
    lite = OpenAIConfig(preset="yandex", model="yandexgpt-lite/rc", auth_scheme="Bearer")
    assert lite.model == "gpt://b1genv/yandexgpt-lite/rc"
    assert lite.api_key == "AQVN-env-000000"
    full = OpenAIConfig(preset="yandex", model="gpt://other/yandexgpt/latest", stream_usage=True)
    assert full.model == "gpt://other/yandexgpt/latest" and full.stream_usage


def test_yandex_preset_needs_a_folder(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="folder_id"):
        OpenAIConfig(preset="yandex")


# -- emulator CLI -------------------------------------------------------------------------------


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    stop.set()
    assert main(["--tls"], stop=stop) == 0
    out = capsys.readouterr().out
    assert "export OPENAI_BASE_URL=https://127.0.0.1:" in out
    assert f"export OPENAI_API_KEY={TEST_API_KEY}" in out
    assert "SSL_CERT_FILE" in out


def test_orchestrator_emulate_openai(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if seconds >= 60:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    assert cli.main(["emulate", "openai"]) == 130  # Ctrl-C, as a shell reports it
    out = capsys.readouterr().out
    assert "openai emulator listening on http://127.0.0.1:" in out
    assert "export OPENAI_BASE_URL='http://127.0.0.1:" in out
    assert "export OPENAI_API_KEY=" in out
    assert "[providers.openai]" in out


def test_emulator_is_scriptable() -> None:
    from orchestrator.testing import ScriptableApp

    assert isinstance(OpenAIEmulator(), ScriptableApp)
