"""The Python examples of docs/providers/yandexgpt.md run as written, in order, as one session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers" / "yandexgpt.md"
ENV = (
    "YC_API_KEY",
    "YC_IAM_TOKEN",
    "YC_OAUTH_TOKEN",
    "YC_TOKEN",
    "YC_SERVICE_ACCOUNT_KEY_FILE",
    "YC_FOLDER_ID",
    "YANDEXGPT_BASE_URL",
    "YANDEXGPT_AUTH",
)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_doc_examples_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 7
    namespace: dict[str, object] = {"__name__": "yandexgpt_docs"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{DOC.name}[python block {number}]", "exec")
        exec(code, namespace)  # noqa: S102  (our own documentation)
    out = capsys.readouterr().out
    assert "has no folder id" in out
    assert "IAM exchanges: 1" in out
    assert "ai.languageModels.user" in out
    assert "Echo: retried" in out
    assert "Results: get_weather: +8°C in Saint Petersburg; get_time: 12:00" in out
    assert "tool_calls ['get_time']" in out
    assert "City(name='Kazan', population=1308660)" in out
    assert '{"population": 1}' in out
    assert "3 256 yandexgpt/text-search text-search-doc\n3 requests" in out
    assert "Echo: Hello via /v1\n256" in out


def test_doc_lists_every_config_field_and_env_var() -> None:
    from orchestrator_yandexgpt import ENV_VARS, YandexGPTConfig

    text = DOC.read_text(encoding="utf-8")
    for field in YandexGPTConfig.model_fields:
        assert f"`{field}`" in text, field
    for variable in ENV_VARS:
        assert f"`{variable}`" in text, variable
