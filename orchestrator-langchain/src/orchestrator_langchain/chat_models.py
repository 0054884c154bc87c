"""``ChatOrchestrator``: a LangChain chat model whose answers come from an orchestrator
:class:`~orchestrator.Router` (retries, failover, circuit breakers, budgets, streaming
that never mixes providers)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import BaseOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.json import parse_json_markdown
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from orchestrator import GenerationParams, ProviderError, Router, SyncRouter
from orchestrator.types import Chunk, Completion, Message
from orchestrator_langchain._convert import (
    StopCutter,
    as_langchain_error,
    chunk_message,
    completion_message,
    cut_at_stop,
    to_messages,
    to_tool,
    to_tool_choice,
)
from orchestrator_langchain._runtime import resolve_router, sync_router

__all__ = ["ChatOrchestrator"]

StructuredOutputMethod = Literal["json_schema", "function_calling", "json_mode"]
#: Per-call keyword arguments that become GenerationParams fields.
_PARAM_KWARGS = (
    "temperature",
    "max_tokens",
    "top_p",
    "model",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
)


class ChatOrchestrator(BaseChatModel):
    """A LangChain chat model over an orchestrator ``Router``.

    Give it the router (``ChatOrchestrator(router=router)``, a ``Router`` or a
    ``SyncRouter``), or a configuration file (``config="orchestrator.toml"``), or nothing:
    then ``Router.from_env()`` builds one from every installed provider that has
    credentials in the environment.

    Every call goes through the router, so retries, failover between providers, circuit
    breakers, budgets and cost accounting apply as they do without LangChain. LangChain's
    ``with_fallbacks`` is not needed for provider outages: the router already moves on to
    the next provider, and never after a stream's first text (it would mix two answers).

    Per call (``invoke(..., model=..., temperature=..., stop=[...], provider=...,
    timeout=...)``) or per instance: ``model`` asks every provider for that model
    (``GenerationParams.model``; a provider that cannot switch models is skipped);
    ``provider`` pins the request to one provider (no failover); ``timeout`` bounds the
    whole request across retries and fallbacks (the router's ``deadline``).

    ``stop`` sequences are applied here, for every provider alike (GigaChat and YandexGPT
    have none): the text ends before the first one; a stream shows nothing after it, and
    reads the rest of the answer only for its usage and cost.

    ``response_metadata`` of each answer has ``model_name``, ``provider`` (the router's
    provider that answered), ``finish_reason``, ``request_id`` and ``cost_rub`` when the
    price is known; ``usage_metadata`` has the vendor's token counts.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    router: Any = Field(default=None, exclude=True)
    """The orchestrator ``Router`` (or ``SyncRouter``) that answers."""
    config: str | Path | dict[str, Any] | None = Field(default=None, exclude=True)
    """A configuration file (or dict) to build the router from, instead of ``router``."""
    model: str | None = Field(default=None, alias="model_name")
    """The model to ask every provider for; None: each provider's configured model."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """The text ends before the first of these (applied by this adapter)."""
    provider: str | None = None
    """Pin every request to this provider of the router (no failover)."""
    timeout: float | None = None
    """Seconds for a whole request, across retries and fallbacks (the router's deadline)."""
    streaming: bool = False
    """Stream under the hood even for ``invoke`` (callbacks then see every token)."""
    max_retries: int | None = Field(default=None, exclude=True)
    """Accepted because LangChain's standard parameters include it; retries are the
    router's (each provider's retry policy), so this does not change them."""
    api_key: SecretStr | None = Field(default=None, exclude=True)
    """Accepted because LangChain's standard parameters include it; credentials belong to
    each provider of the router (its configuration), so this is not used."""

    _router: Router = PrivateAttr()
    _given_sync: SyncRouter | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _build_router(self) -> ChatOrchestrator:
        self._router, self._given_sync = resolve_router(self.router, self.config)
        self.router = self._router
        return self

    # -- LangChain's hooks --------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "orchestrator"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "providers": [p.config.name for p in self._router.providers],
            "strategy": self._router.strategy_name,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "provider": self.provider,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "orchestrator"
        params["ls_model_name"] = kwargs.get("model") or self.model or "router"
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- one request --------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[Message], GenerationParams | None, dict[str, Any], list[str]]:
        """The router's input for one call, validated before any network call, and the
        stop sequences (applied here: see :meth:`_cut`). Nothing set: no params at all, so
        each provider uses its own defaults."""
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "model": self.model,
        }
        for name in _PARAM_KWARGS:
            if name in kwargs:
                values[name] = kwargs.pop(name)
        stops = [s for s in (stop or self.stop or ()) if s]
        options = {
            "provider": kwargs.pop("provider", self.provider),
            "deadline": kwargs.pop("timeout", self.timeout),
        }
        kwargs.pop("stream", None)  # LangChain's own switch, already acted upon
        if kwargs:
            raise TypeError(
                f"ChatOrchestrator got unexpected keyword arguments {sorted(kwargs)}; it takes "
                f"{', '.join(_PARAM_KWARGS)}, stop, provider and timeout"
            )
        given = {k: v for k, v in values.items() if v is not None}
        params = GenerationParams(**given) if given else None
        return to_messages(messages), params, options, stops

    def _model_name(self, answer: Completion | Chunk, params: GenerationParams | None) -> str:
        """The model that answered, when the vendor did not say."""
        if answer.model:
            return answer.model
        if params is not None and params.model:
            return params.model
        try:
            configured = self._router.get_provider(answer.provider).config.model
        except KeyError:
            configured = None
        return configured or answer.provider or "unknown"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msgs, params, options, stops = self._request(messages, stop, kwargs)
        runner = sync_router(self._router, self._given_sync)
        try:
            completion = runner.chat(msgs, params, **options)
        except ProviderError as exc:
            as_langchain_error(exc)  # the same error, also LangChain's matching class
            raise
        return _result(_cut(completion, stops), self._model_name(completion, params))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msgs, params, options, stops = self._request(messages, stop, kwargs)
        try:
            completion = await self._router.chat(msgs, params, **options)
        except ProviderError as exc:
            as_langchain_error(exc)  # the same error, also LangChain's matching class
            raise
        return _result(_cut(completion, stops), self._model_name(completion, params))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        msgs, params, options, stops = self._request(messages, stop, kwargs)
        runner = sync_router(self._router, self._given_sync)
        pieces = _Pieces(stops)
        try:
            # closing(): leaving early (break, an error in a callback) closes the provider's
            # HTTP response at once instead of when the generator is garbage-collected.
            with contextlib.closing(runner.chat_stream(msgs, params, **options)) as chunks:
                for chunk in chunks:
                    generation = self._piece(pieces, chunk, params)
                    if generation is None:
                        continue
                    if run_manager is not None and generation.text:
                        run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation
        except ProviderError as exc:
            as_langchain_error(exc)  # the same error, also LangChain's matching class
            raise

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        msgs, params, options, stops = self._request(messages, stop, kwargs)
        pieces = _Pieces(stops)
        try:
            async with contextlib.aclosing(self._router.chat_stream(msgs, params, **options)) as s:
                async for chunk in s:
                    generation = self._piece(pieces, chunk, params)
                    if generation is None:
                        continue
                    if run_manager is not None and generation.text:
                        await run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation
        except ProviderError as exc:
            as_langchain_error(exc)  # the same error, also LangChain's matching class
            raise

    def _piece(
        self, pieces: _Pieces, chunk: Chunk, params: GenerationParams | None
    ) -> ChatGenerationChunk | None:
        """The generation chunk for ``chunk`` (None when it has nothing to show)."""
        chunk = pieces.cut(chunk)
        if not (chunk.delta or chunk.tool_calls or chunk.finish_reason):
            return None
        model = self._model_name(chunk, params) if chunk.finish_reason else ""
        message = chunk_message(chunk, model, first_index=pieces.calls)
        pieces.calls += len(chunk.tool_calls)
        return ChatGenerationChunk(message=message)

    # -- tools and structured output ------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Let the model call ``tools`` (``BaseTool``\\ s, functions, pydantic models,
        TypedDicts or tool dicts).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (at least
        one call) or a tool's name (a call of exactly that tool). The router sends the
        request only to providers that support tools, and checks every call it gets back
        against the tools' schemas (a call off its schema fails over to the next provider),
        so the arguments are always schema-valid: ``strict`` is accepted for that reason
        and changes nothing.
        """
        del strict  # every answer is validated against the schemas by the router
        converted = [to_tool(tool) for tool in tools]
        choice = to_tool_choice(tool_choice, converted)
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=converted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: StructuredOutputMethod = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A runnable that answers with an instance of ``schema`` (a pydantic model, v2 or
        v1) or a dict (a JSON Schema or a TypedDict).

        ``method``: ``"json_schema"`` (default) sends the schema as the request's
        ``response_format``: the router asks only providers with structured output and
        fails over when an answer does not validate. ``"function_calling"`` forces a call
        of a tool with the schema as its parameters. ``"json_mode"`` asks for any JSON
        object (say in the prompt which keys you want); the answer is then validated here.
        ``include_raw=True`` returns ``{"raw", "parsed", "parsing_error"}``.
        """
        if kwargs:
            raise ValueError(f"with_structured_output got unsupported arguments {kwargs}")
        if method not in ("json_schema", "function_calling", "json_mode"):
            raise ValueError(
                f"method must be 'json_schema', 'function_calling' or 'json_mode', got {method!r}"
            )
        del strict  # the router validates every answer against the schema
        tool = to_tool(schema)
        ls_format = {"kwargs": {"method": method}, "schema": schema}
        llm: Runnable[LanguageModelInput, BaseMessage]
        if method == "function_calling":
            llm = self.bind_tools(
                [tool], tool_choice=tool["name"], ls_structured_output_format=ls_format
            )
            parser = _StructuredParser(target=schema, tool_name=tool["name"])
        else:
            response_format: dict[str, Any] = (
                {"type": "json_object"}
                if method == "json_mode"
                else {
                    "type": "json_schema",
                    "json_schema": {"name": tool["name"], "schema": tool["parameters"]},
                }
            )
            llm = self.bind(response_format=response_format, ls_structured_output_format=ls_format)
            parser = _StructuredParser(target=schema)
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks(
            [RunnablePassthrough.assign(parsed=lambda _: None)], exception_key="parsing_error"
        )
        return RunnableMap(raw=llm) | parsed


class _Pieces:
    """A stream's state: its stop sequences (applied here) and the tool calls so far."""

    __slots__ = ("calls", "cutter")

    def __init__(self, stops: list[str]) -> None:
        self.cutter = StopCutter(stops) if stops else None
        self.calls = 0

    def cut(self, chunk: Chunk) -> Chunk:
        cutter = self.cutter
        if cutter is None:
            return chunk
        delta = cutter.feed(chunk.delta)
        if chunk.finish_reason is None:
            return dataclasses.replace(chunk, delta=delta)
        # The last chunk: what was held back, and "stop" when a stop sequence ended the text
        # (the rest of the answer was read, for its usage and cost, but not shown).
        delta += cutter.flush()
        finish = "stop" if cutter.done else chunk.finish_reason
        return dataclasses.replace(chunk, delta=delta, finish_reason=finish)


def _cut(completion: Completion, stops: list[str]) -> Completion:
    """``completion`` with its text cut before the first of ``stops``."""
    text, found = cut_at_stop(completion.text, stops)
    if not found:
        return completion
    return dataclasses.replace(completion, text=text, finish_reason="stop")


def _result(completion: Completion, model: str) -> ChatResult:
    message = completion_message(completion, model)
    return ChatResult(
        generations=[
            ChatGeneration(
                message=message, generation_info={"finish_reason": completion.finish_reason}
            )
        ],
        llm_output={"model_name": model, "provider": completion.provider},
    )


class _StructuredParser(BaseOutputParser[Any]):
    """The answer as ``schema``: from the forced tool call's arguments (``tool_name``) or
    from the JSON text. It parses the whole answer once (a stream yields one value, never a
    half-parsed object)."""

    target: Any
    tool_name: str | None = None

    @property
    def _type(self) -> str:
        return "orchestrator_structured_output"

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        generation = result[0]
        if self.tool_name is None or not isinstance(generation, ChatGeneration):
            return self.parse(generation.text)
        message = generation.message
        calls = getattr(message, "tool_calls", None) or []
        for call in calls:
            if call["name"] == self.tool_name:
                return self._validate(call["args"], str(call["args"]))
        raise OutputParserException(
            f"the model did not call {self.tool_name!r}", llm_output=message.text
        )

    def parse(self, text: str) -> Any:
        try:
            value = parse_json_markdown(text)
        except ValueError as exc:
            raise OutputParserException(f"the answer is not JSON: {exc}", llm_output=text) from None
        return self._validate(value, text)

    def _validate(self, value: Any, text: str) -> Any:
        if not isinstance(value, Mapping):
            raise OutputParserException(
                f"the answer is JSON {type(value).__name__}, not an object", llm_output=text
            )
        schema: Any = self.target
        if not (isinstance(schema, type) and is_basemodel_subclass(schema)):
            return dict(value)
        model: Any = schema
        try:
            if hasattr(model, "model_validate"):
                return model.model_validate(value)
            return model.parse_obj(value)  # a pydantic.v1 model
        except Exception as exc:  # pydantic's ValidationError of either major version
            raise OutputParserException(
                f"the answer does not match {schema.__name__}: {exc}", llm_output=text
            ) from None
