"""ChatOrchestrator beyond the standard suites: what reaches the router, what comes back,
errors, and the sync/async plumbing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core import exceptions as lc
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel
from scripted import JOKE, ScriptedConfig, ScriptedProvider

import orchestrator
from orchestrator import Router, SyncRouter
from orchestrator.providers import MockProvider
from orchestrator.providers.mock import MockConfig
from orchestrator_langchain import ChatOrchestrator


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"It is 8 degrees in {city}."


def test_messages_reach_the_router_as_orchestrator_messages(
    router: Router, provider: ScriptedProvider
) -> None:
    provider.reply_next("Fine.")
    llm = ChatOrchestrator(router=router)
    history = [
        SystemMessage("Be brief."),
        HumanMessage([{"type": "text", "text": "Weather in "}, "Moscow?"], name="ann"),
        AIMessage(
            [{"type": "text", "text": "Let me look."}, {"type": "tool_use", "id": "c1"}],
            tool_calls=[{"name": "get_weather", "args": {"city": "Moscow"}, "id": "c1"}],
        ),
        ToolMessage("8 degrees", tool_call_id="c1"),
        ChatMessage(role="developer", content="Answer in one word."),
    ]
    answer = llm.bind_tools([get_weather]).invoke(history)
    assert answer.content == "Fine."
    messages, params = provider.requests[-1]
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "Weather in Moscow?"),
        ("assistant", "Let me look."),
        ("tool", "8 degrees"),
        ("system", "Answer in one word."),
    ]
    call = messages[2].tool_calls[0]
    assert (call.id, call.name, dict(call.arguments)) == ("c1", "get_weather", {"city": "Moscow"})
    assert messages[3].name == "get_weather"  # the router names the result after its call
    assert params is not None and [t.name for t in params.tools or ()] == ["get_weather"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (HumanMessage([{"type": "image_url", "image_url": {"url": "x"}}]), ValueError),
        (ChatMessage(role="tool", content="x"), ValueError),
        (FunctionMessage(name="f", content="x"), TypeError),
    ],
)
def test_input_the_router_cannot_send_is_refused_before_any_call(
    router: Router, provider: ScriptedProvider, message: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        ChatOrchestrator(router=router).invoke([message])
    assert provider.requests == []


def test_a_tool_message_with_structured_content_is_sent_as_json(
    router: Router, provider: ScriptedProvider
) -> None:
    call = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "c9"}
    history = [HumanMessage("?"), AIMessage("", tool_calls=[call])]
    result = ToolMessage(content=[{"type": "text", "text": "cold"}], tool_call_id="c9")
    ChatOrchestrator(router=router).invoke([*history, result])
    assert provider.requests[-1][0][-1].content == "cold"


def test_params_and_options_per_instance_and_per_call(
    router: Router, provider: ScriptedProvider
) -> None:
    llm = ChatOrchestrator(
        router=router, model="scripted-2", temperature=0.2, max_tokens=50, top_p=0.5
    )
    answer = llm.invoke("hi you there", stop=["there"], temperature=0.9, provider="scripted")
    _, params = provider.requests[-1]
    assert params is not None
    assert (params.model, params.temperature, params.max_tokens, params.top_p) == (
        "scripted-2",
        0.9,
        50,
        0.5,
    )
    assert params.stop is None  # applied here, for every provider alike
    assert answer.content == "Hello! You said: hi you "
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.response_metadata["model_name"] == "scripted-2"
    assert answer.response_metadata["provider"] == "scripted"
    assert answer.usage_metadata is not None and answer.usage_metadata["total_tokens"] > 0


def test_unknown_call_options_are_refused(router: Router) -> None:
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['seed'\\]"):
        ChatOrchestrator(router=router).invoke("hi", seed=1)


def test_ls_params_name_the_router_and_the_model(router: Router) -> None:
    llm = ChatOrchestrator(router=router, temperature=0.1, max_tokens=7, stop=["x"])
    params = llm._get_ls_params()
    assert params["ls_provider"] == "orchestrator"
    assert params["ls_model_name"] == "router"
    assert (params["ls_temperature"], params["ls_max_tokens"], params["ls_stop"]) == (
        0.1,
        7,
        ["x"],
    )
    assert llm._get_ls_params(model="m2")["ls_model_name"] == "m2"
    assert llm._identifying_params["providers"] == ["scripted"]


def test_stream_yields_each_chunk_as_it_arrives_with_usage_once(
    router: Router, provider: ScriptedProvider
) -> None:
    tokens: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    chunks = list(ChatOrchestrator(router=router).stream("a b", config={"callbacks": [Tokens()]}))
    assert [c.content for c in chunks] == ["Hello!", " You", " said:", " a", " b", ""]
    assert tokens == [c.content for c in chunks]  # LangChain reports each chunk once
    assert [c.usage_metadata is not None for c in chunks] == [False] * 5 + [True]
    assert [bool(c.response_metadata) for c in chunks] == [False] * 5 + [True]
    assert chunks[-1].response_metadata["model_name"] == "scripted-1"
    assert chunks[-1].chunk_position == "last"


async def test_astream_and_callbacks(router: Router) -> None:
    tokens: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    llm = ChatOrchestrator(router=router)
    chunks = [c async for c in llm.astream("a", config={"callbacks": [Tokens()]})]
    assert "".join(str(c.content) for c in chunks) == "Hello! You said: a"
    assert tokens == [c.content for c in chunks]


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def test_streaming_true_streams_under_invoke(router: Router) -> None:
    llm = ChatOrchestrator(router=router, streaming=True)
    seen = _Tokens()
    answer = llm.invoke("x", config={"callbacks": [seen]})
    assert answer.content == "Hello! You said: x"
    assert answer.response_metadata["provider"] == "scripted"
    # The model reports each text chunk (LangChain adds an empty one at the end).
    assert [t for t in seen.tokens if t] == ["Hello!", " You", " said:", " x"]


async def test_streaming_true_streams_under_ainvoke(router: Router) -> None:
    llm = ChatOrchestrator(router=router, streaming=True)
    seen = _Tokens()
    answer = await llm.ainvoke("y", config={"callbacks": [seen]})
    assert answer.content == "Hello! You said: y"
    assert [t for t in seen.tokens if t] == ["Hello!", " You", " said:", " y"]


def test_streamed_tool_calls_come_whole_and_numbered(
    router: Router, provider: ScriptedProvider
) -> None:
    provider.call_tools_next(("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"}))
    llm = ChatOrchestrator(router=router).bind_tools([get_weather], parallel_tool_calls=True)
    full: AIMessageChunk | None = None
    for chunk in llm.stream("weather?"):
        assert isinstance(chunk, AIMessageChunk)
        full = chunk if full is None else full + chunk
    assert full is not None
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert full.response_metadata["finish_reason"] == "tool_calls"
    _, params = provider.requests[-1]
    assert params is not None and params.parallel_tool_calls is True


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("any", "required"),
        (True, "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("get_weather", "get_weather"),
        ({"type": "function", "function": {"name": "get_weather"}}, "get_weather"),
        (False, None),
    ],
)
def test_tool_choice_maps_to_the_routers(
    router: Router, provider: ScriptedProvider, choice: Any, expected: str | None
) -> None:
    if expected not in (None, "auto", "none"):
        provider.call_tools_next(("get_weather", {"city": "Oslo"}))
    ChatOrchestrator(router=router).bind_tools([get_weather], tool_choice=choice).invoke("?")
    _, params = provider.requests[-1]
    assert params is not None and params.tool_choice == expected


@pytest.mark.parametrize(
    ("choice", "error"), [("other_tool", ValueError), ({"type": "x"}, ValueError), (3, TypeError)]
)
def test_a_tool_choice_naming_no_tool_is_refused(
    router: Router, choice: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        ChatOrchestrator(router=router).bind_tools([get_weather], tool_choice=choice)


def test_structured_output_by_schema_function_call_and_json_mode(
    router: Router, provider: ScriptedProvider
) -> None:
    llm = ChatOrchestrator(router=router)
    provider.reply_next(f"```json\n{JOKE}\n```")
    assert isinstance(llm.with_structured_output(Joke).invoke("joke"), Joke)
    _, params = provider.requests[-1]
    assert params is not None and params.response_format is not None
    assert params.response_format.name == "Joke"

    provider.call_tools_next(("Joke", {"setup": "a", "punchline": "b"}))
    joke = llm.with_structured_output(Joke, method="function_calling").invoke("joke")
    assert joke == Joke(setup="a", punchline="b")
    assert provider.requests[-1][1].tool_choice == "Joke"  # type: ignore[union-attr]

    provider.reply_next(JOKE)
    value = llm.with_structured_output(Joke.model_json_schema(), method="json_mode").invoke("j")
    assert set(value) == {"setup", "punchline"}
    rf = provider.requests[-1][1].response_format  # type: ignore[union-attr]
    assert rf is not None and rf.schema is None  # any JSON object


def test_structured_output_include_raw_and_parsing_errors(
    router: Router, provider: ScriptedProvider
) -> None:
    llm = ChatOrchestrator(router=router)
    provider.reply_next('{"setup": "only"}')
    result = llm.with_structured_output(Joke, method="json_mode", include_raw=True).invoke("j")
    assert isinstance(result["raw"], AIMessage)
    assert result["parsed"] is None
    assert isinstance(result["parsing_error"], lc.OutputParserException)

    provider.reply_next("[1, 2]")
    with pytest.raises(lc.OutputParserException, match="not an object"):
        llm.with_structured_output(Joke, method="json_mode").invoke("j")
    provider.reply_next("no json here")
    with pytest.raises(lc.OutputParserException, match="not JSON"):
        llm.with_structured_output(Joke, method="json_mode").invoke("j")
    provider.reply_next("I will not call it")
    with pytest.raises(lc.OutputParserException, match="did not call 'Joke'"):
        llm.with_structured_output(Joke, method="function_calling").invoke("j")


def test_structured_output_refuses_unknown_methods_and_arguments(router: Router) -> None:
    llm = ChatOrchestrator(router=router)
    with pytest.raises(ValueError, match="method must be"):
        llm.with_structured_output(Joke, method="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported arguments"):
        llm.with_structured_output(Joke, tools=[])


def test_an_answer_off_the_schema_is_an_output_parser_exception(
    provider: ScriptedProvider,
) -> None:
    router = Router(on_invalid_output="raise")
    router.add_provider(provider)
    provider.reply_next('{"setup": 1}')
    with pytest.raises(lc.OutputParserException) as caught:
        ChatOrchestrator(router=router).with_structured_output(Joke).invoke("joke")
    assert isinstance(caught.value, orchestrator.StructuredOutputError)
    assert caught.value.llm_output == '{"setup": 1}'


def _mock_router(mode: str, name: str = "m") -> Router:
    router = Router()
    router.add_provider(MockProvider(MockConfig(name=name, mode=mode, max_retries=0)))  # type: ignore[arg-type]
    return router


@pytest.mark.parametrize(
    ("mode", "langchain_error", "retryable"),
    [
        ("rate_limit", lc.ModelRateLimitError, True),
        ("auth_error", lc.ModelAuthenticationError, False),
        ("invalid_request", lc.ModelInvalidRequestError, False),
        ("server_error", lc.ModelAPIError, True),
        ("timeout", lc.ModelTimeoutError, True),
    ],
)
def test_router_errors_are_also_langchains(
    mode: str, langchain_error: type[Exception], retryable: bool
) -> None:
    llm = ChatOrchestrator(router=_mock_router(mode))
    with pytest.raises(langchain_error) as caught:
        llm.invoke("hi")
    error = caught.value
    # Still the router's error: its type, its attempts, its message.
    assert isinstance(error, orchestrator.AllProvidersFailedError)
    assert isinstance(error, orchestrator.ProviderError)
    assert all(isinstance(a.error, langchain_error) for a in error.attempts)
    assert isinstance(error.attempts[0].error, lc.ModelError)
    assert error.attempts[0].error.is_retryable is retryable  # type: ignore[attr-defined]
    assert "All providers failed" in str(error)


def test_mixed_failures_are_a_model_error() -> None:
    router = _mock_router("rate_limit", "a")
    router.add_provider(MockProvider(MockConfig(name="b", mode="auth_error", max_retries=0)))
    with pytest.raises(lc.ModelError) as caught:
        ChatOrchestrator(router=router).invoke("hi")
    assert type(caught.value).__mro__[1] is orchestrator.AllProvidersFailedError
    assert not isinstance(caught.value, lc.ModelRateLimitError)


async def test_async_and_streaming_paths_map_errors_too() -> None:
    with pytest.raises(lc.ModelRateLimitError):
        await ChatOrchestrator(router=_mock_router("rate_limit")).ainvoke("hi")
    with pytest.raises(lc.ModelRateLimitError):
        async for _ in ChatOrchestrator(router=_mock_router("rate_limit")).astream("hi"):
            pass
    with pytest.raises(lc.ModelRateLimitError):
        for _ in ChatOrchestrator(router=_mock_router("rate_limit")).stream("hi"):
            pass


def test_a_stream_cut_after_text_is_an_api_error_with_the_partial_text() -> None:
    llm = ChatOrchestrator(router=_mock_router("stream_failure"))
    seen: list[str] = []
    with pytest.raises(lc.ModelAPIError) as caught:
        for chunk in llm.stream("one two three"):
            seen.append(str(chunk.content))
    assert isinstance(caught.value, orchestrator.StreamInterruptedError)
    assert caught.value.partial_text == "".join(seen)


def test_no_provider_able_to_serve_the_request_is_an_invalid_request() -> None:
    llm = ChatOrchestrator(router=_mock_router("success")).bind_tools([get_weather])
    with pytest.raises(lc.ModelInvalidRequestError) as caught:
        llm.invoke("weather?")
    assert isinstance(caught.value, orchestrator.UnsupportedCapabilityError)


def test_errors_that_are_not_the_routers_pass_unchanged() -> None:
    from orchestrator_langchain._convert import as_langchain_error

    error = RuntimeError("a bug")
    assert as_langchain_error(error) is error
    assert type(error) is RuntimeError
    twice = orchestrator.RateLimitError("x")
    assert as_langchain_error(as_langchain_error(twice)) is twice
    assert type(twice).__mro__[1] is orchestrator.RateLimitError
    assert isinstance(twice, lc.ModelRateLimitError)
    assert type(twice).__name__ == "RateLimitError"


def test_sync_calls_work_inside_a_running_event_loop_and_from_threads(router: Router) -> None:
    llm = ChatOrchestrator(router=router)

    async def notebook_cell() -> str:
        return str(llm.invoke("from a loop").content)  # a sync call where a loop runs

    assert asyncio.run(notebook_cell()) == "Hello! You said: from a loop"
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: answers.append(str(llm.invoke(f"t{i}").content)))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [f"Hello! You said: t{i}" for i in range(4)]
    assert llm.batch(["a", "b"])[1].content == "Hello! You said: b"


def test_a_given_sync_router_serves_the_sync_calls() -> None:
    provider = ScriptedProvider(ScriptedConfig(name="s"))
    router = Router()
    router.add_provider(provider)
    with SyncRouter(router) as runner:
        llm = ChatOrchestrator(router=runner)
        assert llm.router is router
        assert llm.invoke("x").content == "Hello! You said: x"
        assert runner._loop is not None  # the given runner's loop served it


def test_router_from_a_config_dict_or_file(tmp_path: Any) -> None:
    llm = ChatOrchestrator(config={"providers": {"m": {"type": "mock"}}})
    assert llm.invoke("hi").content == "Mock response to: hi"
    path = tmp_path / "orchestrator.toml"
    path.write_text('[providers.m]\ntype = "mock"\n')
    assert [p.config.name for p in ChatOrchestrator(config=path).router.providers] == ["m"]


def test_router_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGACHAT_CREDENTIALS", "a2V5")
    llm = ChatOrchestrator()
    assert "gigachat" in [p.config.name for p in llm.router.providers]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"router": "r"}, TypeError),
        ({"config": 3}, ValueError),
        ({"router": Router(), "config": {"providers": {}}}, ValueError),
    ],
)
def test_router_arguments_are_checked(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ChatOrchestrator(**kwargs)


def test_model_name_falls_back_to_the_providers_configured_model() -> None:
    router = Router()

    class Nameless(ScriptedProvider):
        def _model(self, params: Any) -> None:
            return None

    router.add_provider(Nameless(ScriptedConfig(name="n", model="configured")))
    llm = ChatOrchestrator(router=router)
    assert llm.invoke("x").response_metadata["model_name"] == "configured"
    assert llm.invoke("x", model="asked").response_metadata["model_name"] == "asked"
    last = list(llm.stream("x"))[-1]
    assert last.response_metadata["model_name"] == "configured"


def test_stop_sequences_cut_a_stream_and_keep_its_usage(router: Router) -> None:
    llm = ChatOrchestrator(router=router, stop=["sa", "zzz"])
    chunks = list(llm.stream("a b c"))
    assert "".join(str(c.content) for c in chunks) == "Hello! You "
    assert chunks[-1].usage_metadata is not None  # the rest was read for its usage
    assert chunks[-1].response_metadata["finish_reason"] == "stop"


async def test_stop_sequences_cut_an_async_stream(router: Router) -> None:
    llm = ChatOrchestrator(router=router)
    text = "".join([str(c.content) async for c in llm.astream("a b c", stop=[" b"])])
    assert text == "Hello! You said: a"
    assert (await llm.ainvoke("a b c", stop=["c"])).content == "Hello! You said: a b "


def test_consecutive_system_messages_are_sent_as_one(
    router: Router, provider: ScriptedProvider
) -> None:
    ChatOrchestrator(router=router).invoke(
        [SystemMessage("one"), SystemMessage("two"), HumanMessage("hi"), HumanMessage("again")]
    )
    messages, _ = provider.requests[-1]
    assert [(m.role, m.content) for m in messages] == [
        ("system", "one\n\ntwo"),
        ("user", "hi"),
        ("user", "again"),
    ]
