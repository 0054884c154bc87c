"""docs/deploying.md's Redis section: its Python runs against a real redis-server, its
TOML builds a router with a RedisState."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from orchestrator.settings import load_settings
from orchestrator_redis import RedisState
from orchestrator_redis.testing import RedisServer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "deploying.md"


def section() -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index("## Shared state on Redis")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_python_examples_run(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", section(), re.S)
    assert blocks
    for index, code in enumerate(blocks):
        code = code.replace("redis://127.0.0.1:6379/0", redis_server.url)
        exec(compile(code, f"deploying.md#{index}", "exec"), {"__name__": "__main__"})  # noqa: S102
    assert capsys.readouterr().out.splitlines()[-1] == "True"  # it really was connected


def test_toml_example_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = re.findall(r"```toml\n(.*?)```", section(), re.S)
    monkeypatch.setenv("REDIS_URL", "redis://user:pw@127.0.0.1:6379/0")
    raw = tomllib.loads(block)
    # The page's provider, as a mock (no credentials here), with the page's limits.
    raw["providers"] = {"m": {"type": "mock", "limits": raw["providers"]["gigachat"]["limits"]}}
    settings, _ = load_settings(raw)
    assert settings.state is not None and settings.state["url"].endswith("6379/0")
    from orchestrator.settings import _shared_state

    state = _shared_state(settings.state)
    assert isinstance(state, RedisState) and state.prefix == "my-service"
