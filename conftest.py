"""Shared by every test directory: both anyio backends, and a clean vendor environment."""

import pytest
from hypothesis import settings

# A timing is never a pass/fail assertion here: hypothesis's per-example deadline (200 ms by
# default) fails healthy tests on a loaded machine, so it is off for every test.
settings.register_profile("orchestrator", deadline=None)
settings.load_profile("orchestrator")

#: Environment variables that give a vendor's credentials or server (the vendors' SDK names).
VENDOR_CREDENTIALS = (
    "GIGACHAT_CREDENTIALS",
    "GIGACHAT_ACCESS_TOKEN",
    "GIGACHAT_USER",
    "YC_API_KEY",
    "YC_IAM_TOKEN",
    "YC_OAUTH_TOKEN",
    "YC_TOKEN",
    "YC_SERVICE_ACCOUNT_KEY_FILE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OLLAMA_HOST",
    "OLLAMA_API_KEY",
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def no_vendor_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide any real vendor credentials of the machine running the tests."""
    for var in VENDOR_CREDENTIALS:
        monkeypatch.delenv(var, raising=False)
