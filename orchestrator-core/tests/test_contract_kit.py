"""The contract kit: its fake server, its guard, its fixtures, and proof that it catches
real defects (deliberately broken providers fail exactly the tests they should)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import orchestrator
import orchestrator.testing
from orchestrator.plugins import PluginRegistry
from orchestrator.testing import (
    FakeOpenAIServer,
    LoopbackServer,
    ProviderContract,
    ScriptableApp,
    StandardTestRemovedError,
)
from orchestrator.testing.contract import _CAPABILITY_TESTS, _marked_with_reason

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "creating-a-provider.md"
KEY = "sk-kit-selftest-7d1e0c"


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAIServer, LoopbackServer]]:
    app = FakeOpenAIServer(api_key=KEY)
    with LoopbackServer(app) as server:
        yield app, server


def _client(server: LoopbackServer, key: str | None = KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=f"{server.base_url}/v1", headers=headers, timeout=10)


# -- the fake OpenAI-compatible server ---------------------------------------------------


def test_fake_is_a_scriptable_app() -> None:
    assert isinstance(FakeOpenAIServer(), ScriptableApp)


def test_fake_answers_chat_with_the_echo_and_usage(
    fake: tuple[FakeOpenAIServer, LoopbackServer],
) -> None:
    app, server = fake
    before = app.request_count
    with _client(server) as client:
        response = client.post(
            "/chat/completions",
            json={"model": "m1", "messages": [{"role": "user", "content": "hi there"}]},
        )
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "m1"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "Echo: hi there"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert response.headers["x-request-id"].startswith("req-")
    assert app.request_count == before + 1
    assert app.requests[-1].body["model"] == "m1"


def _events(body: str) -> list[Any]:
    return [
        line[len("data: ") :] if line.endswith("[DONE]") else json.loads(line[len("data: ") :])
        for line in body.split("\n\n")
        if line.startswith("data: ")
    ]


def test_fake_streams_server_sent_events(fake: tuple[FakeOpenAIServer, LoopbackServer]) -> None:
    _, server = fake
    body = {
        "messages": [{"role": "user", "content": "a b"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with _client(server) as client:
        response = client.post("/chat/completions", json=body)
    assert response.headers["content-type"] == "text/event-stream"
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    usage, final, *_ = reversed(events[:-1])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 3
    assert final["choices"][0]["finish_reason"] == "stop"
    deltas = [e["choices"][0]["delta"].get("content", "") for e in events[:-3]]
    assert "".join(deltas) == "Echo: a b"
    assert len(deltas) == 3
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"


def test_fake_cuts_streams_without_final_event(
    fake: tuple[FakeOpenAIServer, LoopbackServer],
) -> None:
    app, server = fake
    app.cut_next_stream(after_chunks=1)
    body = {"messages": [{"role": "user", "content": "one two three"}], "stream": True}
    with _client(server) as client:
        cut = client.post("/chat/completions", json=body)
        whole = client.post("/chat/completions", json=body)
    assert [e["choices"][0]["delta"]["content"] for e in _events(cut.text)] == ["Echo: "]
    assert _events(whole.text)[-1] == "[DONE]"


def test_fake_scripts_failures_in_order(fake: tuple[FakeOpenAIServer, LoopbackServer]) -> None:
    app, server = fake
    app.fail_next(429, retry_after=0.05, message="slow down")
    app.fail_next(503, times=2)
    with _client(server) as client:
        statuses = [client.get("/models") for _ in range(4)]
    assert [r.status_code for r in statuses] == [429, 503, 503, 200]
    assert statuses[0].headers["retry-after"] == "0.05"
    assert statuses[0].json()["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert "retry-after" not in statuses[1].headers
    assert statuses[1].json()["error"]["type"] == "server_error"
    assert statuses[3].json()["data"][0]["id"] == "fake-model"


def test_fake_outage_and_authentication(fake: tuple[FakeOpenAIServer, LoopbackServer]) -> None:
    app, server = fake
    with _client(server, key="wrong") as client:
        denied = client.get("/models")
    assert denied.status_code == 401
    assert "wrong" not in denied.text
    app.outage = True
    try:
        with _client(server) as client:
            assert client.get("/models").status_code == 503
    finally:
        app.outage = False


def test_fake_rejects_bad_requests(fake: tuple[FakeOpenAIServer, LoopbackServer]) -> None:
    _, server = fake
    with _client(server) as client:
        assert client.get("/nowhere").status_code == 404
        not_json = client.post("/chat/completions", content=b"{nope")
        no_messages = client.post("/chat/completions", json={"messages": []})
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]["message"]
    assert no_messages.status_code == 400


def test_fake_with_fixed_reply_and_no_key() -> None:
    app = FakeOpenAIServer(api_key=None, reply="fixed")
    with LoopbackServer(app) as server, _client(server, key=None) as client:
        response = client.post(
            "/chat/completions", json={"messages": [{"role": "system", "content": "x"}]}
        )
    assert response.json()["choices"][0]["message"]["content"] == "fixed"


def test_fake_validates_scripting_arguments() -> None:
    app = FakeOpenAIServer()
    with pytest.raises(ValueError, match="400-599"):
        app.fail_next(200)
    with pytest.raises(ValueError, match="times"):
        app.fail_next(500, times=0)
    with pytest.raises(ValueError, match="after_chunks"):
        app.cut_next_stream(after_chunks=-1)
    assert app.answer_for([{"role": "assistant", "content": "x"}]) == "Echo: "


@pytest.mark.anyio
async def test_fake_latency_ends_when_the_client_leaves() -> None:
    app = FakeOpenAIServer()
    app.latency = 30.0
    with LoopbackServer(app) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            with anyio.move_on_after(0.2):
                await client.get("/v1/models")
        assert app.request_count == 1
        with anyio.fail_after(5):
            while server.open_connections:
                await anyio.sleep(0.01)
    # Stopping returned promptly: the app did not sleep its 30 seconds out.


def test_fake_ignores_non_http_scopes() -> None:
    async def main() -> None:
        await FakeOpenAIServer()({"type": "lifespan"}, _never, _never)

    anyio.run(main)


async def _never(*args: Any) -> Any:  # pragma: no cover - must not be called
    raise AssertionError("not called")


# -- the package and its pytest plugin ------------------------------------------------------


def test_testing_package_is_lazy_and_complete() -> None:
    assert orchestrator.testing.ProviderContract is ProviderContract
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        orchestrator.testing.Nope  # noqa: B018


def test_pytest_plugin_is_cheap_to_import() -> None:
    code = (
        "import sys, orchestrator.testing.pytest_plugin; "
        "heavy = {'uvicorn', 'httpx', 'orchestrator.testing.contract', 'trustme'} & "
        "set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_loopback_server_fixture(loopback_server: Callable[..., LoopbackServer]) -> None:
    server = loopback_server(FakeOpenAIServer(api_key=None))
    assert httpx.get(f"{server.base_url}/v1/models").status_code == 200


def test_fake_openai_server_fixture(fake_openai_server: LoopbackServer) -> None:
    assert isinstance(fake_openai_server.app, FakeOpenAIServer)
    with _client(fake_openai_server, key=fake_openai_server.app.api_key) as client:
        assert client.get("/models").status_code == 200


def test_plugin_registry_fixture(plugin_registry: PluginRegistry) -> None:
    assert plugin_registry.entry_points is False
    assert plugin_registry.provider_info("mock").plugin == "builtin"


# -- the guard against deleted or silently overridden standard tests ---------------------


def test_guard_rejects_a_deleted_standard_test() -> None:
    with pytest.raises(StandardTestRemovedError, match="removes the standard test"):

        class TestDeleted(ProviderContract):
            test_health_check_true_when_serving = None  # type: ignore[assignment]


def test_guard_rejects_an_unmarked_override() -> None:
    with pytest.raises(StandardTestRemovedError, match=r"without @pytest\.mark\.xfail"):

        class TestOverridden(ProviderContract):
            async def test_health_check_true_when_serving(self, server: Any) -> None:
                pass


def test_guard_rejects_an_xfail_without_reason() -> None:
    with pytest.raises(StandardTestRemovedError):

        class TestNoReason(ProviderContract):
            @pytest.mark.xfail
            async def test_health_check_true_when_serving(self, server: Any) -> None:
                pass


def test_guard_accepts_marked_overrides() -> None:
    class TestMarked(ProviderContract):
        @pytest.mark.xfail(reason="vendor bug 42")
        async def test_health_check_true_when_serving(self, server: Any) -> None:
            pass

        @pytest.mark.skip("no streaming endpoint")
        async def test_stream_yields_chunks(self, server: Any) -> None:
            pass

    assert TestMarked.test_generate_returns_text is ProviderContract.test_generate_returns_text
    assert not _marked_with_reason(lambda: None)


# -- the kit catches real defects -----------------------------------------------------------


def _guide_provider_source() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(r"```python\n# src/orchestrator_acme/provider\.py\n(.*?)```", text, re.S)
    assert match, "the guide's provider block is missing"
    return match.group(1)


SELFTEST = textwrap.dedent(
    '''
    import logging
    import sys

    import orchestrator
    from orchestrator.errors import InvalidRequestError, ProviderError, StreamError
    from orchestrator.plugins import PluginRegistry
    from orchestrator.testing import ProviderContract
    from orchestrator.types import Chunk

    from acme_provider import AcmeProvider


    class Generic429(AcmeProvider):
        """Maps 429 to a generic ProviderError (the original guide's catch-all)."""

        def _error(self, response):
            if response.status_code == 429:
                return ProviderError(f"API error: {response.status_code}")
            return super()._error(response)


    class CleanTruncation(AcmeProvider):
        """Ends a truncated stream as if it were complete."""

        async def stream(self, messages, params=None):
            inner = super().stream(messages, params)
            try:
                async for chunk in inner:
                    yield chunk
            except StreamError:
                yield Chunk(delta="", provider=self.config.name, finish_reason="stop")
            finally:
                await inner.aclose()


    class LeakyLogs(AcmeProvider):
        """Logs its key through a logger of its own (not the redacting library logger)."""

        async def chat(self, messages, params=None):
            logging.getLogger("leaky").info("using key %s", self.config.api_key)
            return await super().chat(messages, params)


    class LeakyPrefix(AcmeProvider):
        """Logs the first 12 characters of its key (what a gateway's error page echoes),
        through a logger of its own."""

        async def chat(self, messages, params=None):
            logging.getLogger("leaky").info("key %s...", self.config.api_key[:12])
            return await super().chat(messages, params)


    class RaisingHealth(AcmeProvider):
        """Lets health_check raise."""

        async def health_check(self):
            response = await self.http_client().get("/models")
            response.raise_for_status()
            return True


    class UncheckedParams(AcmeProvider):
        """Rejects stop sequences in validate_params, yet builds requests without calling it."""

        def validate_params(self, params):
            if params.stop:
                raise InvalidRequestError("Acme has no stop sequences; remove params.stop")

        def _payload(self, messages, params, *, stream):
            payload = super()._payload(messages, None, stream=stream)
            if params is not None:
                payload.update(temperature=params.temperature, stop=params.stop)
            return payload


    PROVIDERS = {
        "good": AcmeProvider,
        "generic429": Generic429,
        "cleantruncation": CleanTruncation,
        "leakylogs": LeakyLogs,
        "leakyprefix": LeakyPrefix,
        "raisinghealth": RaisingHealth,
        "uncheckedparams": UncheckedParams,
    }


    @orchestrator.hookimpl
    def register_providers(register):
        for name, cls in PROVIDERS.items():
            register(cls, name=name)


    class Base(ProviderContract):
        def make_registry(self):
            registry = PluginRegistry(entry_points=False)
            registry.register_plugin(sys.modules[__name__], name="selftest")
            return registry


    class TestGood(Base):
        provider_class = AcmeProvider
        entry_point = "good"


    class TestGeneric429(Base):
        provider_class = Generic429
        entry_point = "generic429"


    class TestCleanTruncation(Base):
        provider_class = CleanTruncation
        entry_point = "cleantruncation"


    class TestLeakyLogs(Base):
        provider_class = LeakyLogs
        entry_point = "leakylogs"


    class TestLeakyPrefix(Base):
        provider_class = LeakyPrefix
        entry_point = "leakyprefix"


    class TestRaisingHealth(Base):
        provider_class = RaisingHealth
        entry_point = "raisinghealth"


    class TestUncheckedParams(Base):
        provider_class = UncheckedParams
        entry_point = "uncheckedparams"
    '''
)


SELFTEST_CLASSES = (
    "TestGood",
    "TestGeneric429",
    "TestCleanTruncation",
    "TestLeakyLogs",
    "TestLeakyPrefix",
    "TestRaisingHealth",
    "TestUncheckedParams",
)


@pytest.fixture(scope="module")
def selftest_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, set[str]]]:
    """Run the kit over the guide's provider and its broken variants, in a subprocess.

    Returns {class: {"passed": {test ids}, "failed": {test ids}}}.
    """
    folder = tmp_path_factory.mktemp("kit-selftest")
    (folder / "acme_provider.py").write_text(_guide_provider_source(), encoding="utf-8")
    (folder / "test_selftest.py").write_text(SELFTEST, encoding="utf-8")
    cases: list[ET.Element] = []
    # The good provider runs on both backends; the broken ones on asyncio only (what they
    # break does not depend on the backend), which halves the time.
    for name, selection in (("good", ["test_selftest.py::TestGood"]), ("broken", [
        *(f"test_selftest.py::{cls}" for cls in SELFTEST_CLASSES[1:]), "-k", "not trio",
    ])):  # fmt: skip
        report = folder / f"{name}.xml"
        options = ["-q", "-p", "no:cacheprovider", "-W", "error", f"--junitxml={report}"]
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *selection, *options],
            cwd=folder,
            env={**_env(), "PYTHONPATH": str(folder)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert report.exists(), result.stdout + result.stderr
        # S314: the report is the one our own pytest run just wrote.
        cases.extend(ET.parse(report).getroot().iter("testcase"))  # noqa: S314
    results: dict[str, dict[str, set[str]]] = {}
    for case in cases:
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        outcome = (
            "failed"
            if case.find("failure") is not None or case.find("error") is not None
            else "skipped"
            if case.find("skipped") is not None
            else "passed"
        )
        results.setdefault(cls, {"passed": set(), "failed": set(), "skipped": set()})
        results[cls][outcome].add(case.get("name", ""))
    return results


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}


def _failed_tests(results: dict[str, dict[str, set[str]]], cls: str) -> set[str]:
    return {name.split("[")[0] for name in results[cls]["failed"]}


def _load_guide_provider() -> type[Any]:
    module = types.ModuleType("guide_acme_provider")
    exec(compile(_guide_provider_source(), str(GUIDE), "exec"), module.__dict__)  # noqa: S102
    sys.modules[module.__name__] = module
    return module.AcmeProvider  # type: ignore[no-any-return]


GuideProvider = _load_guide_provider()


@orchestrator.hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register(GuideProvider, name="acme")


class TestGuideProviderContract(ProviderContract):
    """The kit in-process, over the guide's provider (the subprocess runs below add the
    broken variants)."""

    provider_class = GuideProvider
    entry_point = "acme"

    def make_registry(self) -> PluginRegistry:
        registry = PluginRegistry(entry_points=False)
        registry.register_plugin(sys.modules[__name__], name="guide")
        return registry


def test_kit_passes_the_guide_provider(selftest_results: dict[str, dict[str, set[str]]]) -> None:
    good = selftest_results["TestGood"]
    assert not good["failed"], sorted(good["failed"])
    # Every standard test, except those of capabilities the guide's provider lacks.
    declared = set(GuideProvider.capabilities().names())
    standard = {
        name
        for name in ProviderContract._standard_tests
        if _CAPABILITY_TESTS.get(name, "chat") in declared | {"chat"}
    }
    assert "test_tool_round_trip" not in standard
    assert {name.split("[")[0] for name in good["passed"]} == standard
    # Every standard test ran on both backends.
    assert any(name.endswith("[trio]") for name in good["passed"])
    assert any(name.endswith("[asyncio]") for name in good["passed"])


def test_kit_fails_a_provider_mapping_429_to_a_generic_error(
    selftest_results: dict[str, dict[str, set[str]]],
) -> None:
    failed = selftest_results["TestGeneric429"]["failed"]
    assert _failed_tests(selftest_results, "TestGeneric429") == {
        "test_http_errors_map_to_typed_errors",
        "test_stream_http_errors_map_to_typed_errors",
        "test_retry_after_is_honoured",
    }
    mapping = {name for name in failed if name.startswith("test_http_errors")}
    assert mapping and all("429" in name for name in mapping)


def test_kit_fails_a_provider_ending_a_truncated_stream_cleanly(
    selftest_results: dict[str, dict[str, set[str]]],
) -> None:
    assert _failed_tests(selftest_results, "TestCleanTruncation") == {
        "test_truncated_stream_is_an_error",
        "test_router_rejects_truncated_stream",
    }


def test_kit_fails_a_provider_leaking_its_key(
    selftest_results: dict[str, dict[str, set[str]]],
) -> None:
    assert _failed_tests(selftest_results, "TestLeakyLogs") == {"test_secrets_never_leak"}


def test_kit_fails_a_provider_leaking_the_first_characters_of_its_key(
    selftest_results: dict[str, dict[str, set[str]]],
) -> None:
    """Issue 11, defect 11: twelve characters of the key are a leak too."""
    assert _failed_tests(selftest_results, "TestLeakyPrefix") == {"test_secrets_never_leak"}


def test_kit_fails_a_health_check_that_raises(
    selftest_results: dict[str, dict[str, set[str]]],
) -> None:
    assert {
        "test_health_check_false_during_outage",
        "test_health_check_false_when_server_down",
    } <= _failed_tests(selftest_results, "TestRaisingHealth")


def test_kit_fails_a_provider_that_ignores_its_own_validate_params(
    selftest_results: dict[str, dict[str, set[str]]],
) -> None:
    assert _failed_tests(selftest_results, "TestUncheckedParams") == {
        "test_rejected_params_fail_before_the_network"
    }
