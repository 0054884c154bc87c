"""A library prints nothing by default; ORCHESTRATOR_LOG=debug|info is the one switch."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest

from orchestrator import _logging

#: A plain script: no logging configuration, one provider call retried once.
SCRIPT = textwrap.dedent(
    """
    import anyio
    from orchestrator.errors import RateLimitError
    from orchestrator.providers.base import BaseProvider
    from orchestrator.config import ProviderConfig

    class Flaky(BaseProvider):
        calls = 0

        async def generate(self, prompt, params=None):
            async def once():
                Flaky.calls += 1
                if Flaky.calls == 1:
                    raise RateLimitError("slow down", provider="flaky", status_code=429)
                return "answered"
            return await self._retry_with_backoff(once)

        async def health_check(self):
            return True

    provider = Flaky(ProviderConfig(name="flaky", max_retries=2, backoff_base=0.01))
    print(anyio.run(provider.generate, "hi"))
    """
)


def _run(env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != _logging.ENV_VAR}
    if env_value is not None:
        env[_logging.ENV_VAR] = env_value
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=False
    )


def test_a_plain_script_prints_nothing_on_a_retry() -> None:
    result = _run(None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "answered"
    assert result.stderr == ""


@pytest.mark.parametrize("level", ["debug", "info", "INFO"])
def test_orchestrator_log_shows_the_retry_on_stderr(level: str) -> None:
    result = _run(level)
    assert result.returncode == 0, result.stderr
    assert "flaky: RateLimitError after" in result.stderr and "retry 1/2" in result.stderr
    assert result.stdout.strip() == "answered"


def test_a_bad_orchestrator_log_value_warns_and_logs_nothing() -> None:
    result = _run("loud")
    assert result.returncode == 0
    assert "ORCHESTRATOR_LOG='loud' is not a log level" in result.stderr
    assert "retry 1/2" not in result.stderr


def test_the_orchestrator_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("orchestrator").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_level_from_env() -> None:
    assert _logging.level_from_env(None) is None
    assert _logging.level_from_env(" ") is None
    assert _logging.level_from_env("Debug") == logging.DEBUG
    with pytest.raises(ValueError, match="ORCHESTRATOR_LOG=debug"):
        _logging.level_from_env("verbose")
