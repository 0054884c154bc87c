"""The YandexGPT provider (Yandex Cloud Foundation Models REST API).

    from orchestrator_yandexgpt import YandexGPTConfig, YandexGPTProvider

    provider = YandexGPTProvider(
        YandexGPTConfig(name="yandex", api_key="...", folder_id="b1g...", model="yandexgpt-lite")
    )
    completion = await provider.chat([Message("user", "Hello")])

Parameters: ``temperature`` must be within 0..1 (YandexGPT's range; larger values are
rejected before any network call, never clamped), ``max_tokens`` is sent as the string
``maxTokens``; ``top_p`` other than 1.0 and ``stop`` sequences are rejected because the API
has no such options. With ``params=None`` the vendor's defaults apply.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import re
import ssl
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager, aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from orchestrator.boundary import (
    body_excerpt,
    json_loads,
    map_transport_error,
    mapped_transport_errors,
    token_count,
)
from orchestrator.capabilities import EmbeddingSpace
from orchestrator.errors import (
    ConfigurationError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    StreamError,
)
from orchestrator.pricing import load_price_list
from orchestrator.providers.base import BaseProvider
from orchestrator.sse import release
from orchestrator.tools import new_call_id, parse_arguments
from orchestrator.types import (
    Chunk,
    Completion,
    EmbeddingKind,
    Embeddings,
    FinishReason,
    GenerationParams,
    Message,
    ToolCall,
    Usage,
    coerce_messages,
)
from orchestrator_yandexgpt.auth import (
    ApiKeyAuth,
    Credentials,
    ExchangedIamAuth,
    IamTokenAuth,
    ServiceAccountKey,
)
from orchestrator_yandexgpt.config import (
    CREDENTIAL_ENV_VARS,
    DEFAULT_BASE_URL,
    MissingFolderError,
    YandexGPTConfig,
    base_url_from_env,
    resolve_settings,
)
from orchestrator_yandexgpt.errors import (
    TLS_HINT,
    error_from_info,
    error_from_response,
    parse_error_body,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Alternative",
    "Token",
    "YandexGPTProvider",
    "cumulative_delta",
    "embedding_model_uri",
    "model_uri",
    "parse_alternative",
    "parse_completion",
    "parse_tool_calls",
    "wire_messages",
    "wire_options",
]

COMPLETION_PATH = "/foundationModels/v1/completion"
COMPLETION_ASYNC_PATH = "/foundationModels/v1/completionAsync"
TOKENIZE_PATH = "/foundationModels/v1/tokenize"
TOKENIZE_COMPLETION_PATH = "/foundationModels/v1/tokenizeCompletion"
EMBEDDING_PATH = "/foundationModels/v1/textEmbedding"

_VERSIONS = ("latest", "rc", "deprecated")
_SHORT_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/([A-Za-z0-9._-]+))?$")

#: Alternative status -> finish reason. PARTIAL is not final; UNSPECIFIED says nothing.
_FINISH: dict[str, FinishReason | None] = {
    "ALTERNATIVE_STATUS_FINAL": "stop",
    "ALTERNATIVE_STATUS_TRUNCATED_FINAL": "length",
    "ALTERNATIVE_STATUS_CONTENT_FILTER": "content_filter",
    "ALTERNATIVE_STATUS_TOOL_CALLS": "tool_calls",
    "ALTERNATIVE_STATUS_UNSPECIFIED": None,
}
_FINAL_STATUSES = frozenset(s for s in _FINISH if s != "ALTERNATIVE_STATUS_UNSPECIFIED")


def model_uri(model: str | None, folder_id: str) -> str:
    """``gpt://<folder>/<model>/<version>`` for a short name; a full URI is kept as is.

    Raises :class:`ConfigurationError` for a name that is neither.
    """
    name = (model or "yandexgpt-lite").strip()
    if "://" in name:
        return name
    match = _SHORT_MODEL.match(name)
    if match is None or (match.group(1) is not None and match.group(1) not in _VERSIONS):
        raise ConfigurationError(
            f"YandexGPT model {name!r} is not a model name: use a short name such as "
            "'yandexgpt-lite', 'yandexgpt', 'llama-lite' or 'llama', optionally with "
            "'/latest', '/rc' or '/deprecated', or a full 'gpt://<folder>/<model>/<version>' URI"
        )
    if match.group(1) is None:
        name += "/latest"
    return f"gpt://{folder_id}/{name}"


_EMBEDDING_SHORT = {"doc": "text-search-doc", "query": "text-search-query"}


def embedding_model_uri(model: str, folder_id: str) -> str:
    """``emb://<folder>/<model>/latest`` for a short embedding model name
    (``text-search-doc``, ``text-search-query``, or the SDK's ``doc`` / ``query``,
    optionally with a ``/<version>``); a full URI (``emb://...``, or a fine-tune's
    ``gpt://<folder>/text-embeddings/<version>@<suffix>``) is kept as is.

    Raises :class:`ConfigurationError` for a name that is neither.
    """
    name = model.strip()
    if "://" in name:
        return name
    match = _SHORT_MODEL.match(name)
    if match is None:
        raise ConfigurationError(
            f"YandexGPT embedding model {name!r} is not a model name: use 'text-search-doc', "
            "'text-search-query' (optionally with '/latest'), or a full 'emb://<folder>/...' "
            "or 'gpt://<folder>/text-embeddings/...' URI"
        )
    base, _, version = name.partition("/")
    return f"emb://{folder_id}/{_EMBEDDING_SHORT.get(base, base)}/{version or 'latest'}"


def wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as YandexGPT takes them (each has exactly one of ``text``,
    ``toolCallList``, ``toolResultList``).

    An assistant message's ``tool_calls`` go as ``toolCallList`` (arguments as objects; its
    text, when it has one, as an assistant message just before). Consecutive ``tool``
    messages go as ONE ``user`` message whose ``toolResultList`` holds their results in
    order, each ``{"functionResult": {"name", "content"}}`` (the native API has no call ids:
    results are matched by name and order).
    """
    wire: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None
    for message in messages:
        if message.role == "tool":
            result = {"functionResult": {"name": message.name or "", "content": message.content}}
            if results is None:
                results = []
                wire.append({"role": "user", "toolResultList": {"toolResults": results}})
            results.append(result)
            continue
        results = None
        if message.tool_calls:
            if message.content:
                wire.append({"role": "assistant", "text": message.content})
            calls = [
                {"functionCall": {"name": call.name, "arguments": dict(call.arguments)}}
                for call in message.tool_calls
            ]
            wire.append({"role": "assistant", "toolCallList": {"toolCalls": calls}})
        else:
            wire.append({"role": message.role, "text": message.content})
    return wire


_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "REQUIRED"}


def wire_options(params: GenerationParams) -> dict[str, Any]:
    """The request's top-level fields for tools and structured output: ``tools``,
    ``toolChoice``, ``parallelToolCalls``, and ``jsonObject`` / ``jsonSchema``."""
    fields: dict[str, Any] = {}
    if params.tools:
        fields["tools"] = [
            {
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters),
                }
            }
            for tool in params.tools
        ]
    choice = params.tool_choice
    if choice is not None:
        mode = _TOOL_CHOICE_MODES.get(choice)
        fields["toolChoice"] = {"mode": mode} if mode else {"functionName": choice}
    if params.parallel_tool_calls is not None:
        fields["parallelToolCalls"] = params.parallel_tool_calls
    response_format = params.response_format
    if response_format is not None:
        if response_format.schema is None:
            fields["jsonObject"] = True
        else:
            fields["jsonSchema"] = {"schema": dict(response_format.schema)}
    return fields


def parse_tool_calls(message: Mapping[str, Any]) -> tuple[ToolCall, ...] | None:
    """The calls of a message's ``toolCallList`` (each with a made-up id: the native API
    has none); ``()`` without one; None for a list of the wrong shape. Arguments that are
    not an object raise :class:`~orchestrator.errors.InvalidToolCallError`."""
    listed = message.get("toolCallList")
    if listed is None:
        return ()
    calls = listed.get("toolCalls") if isinstance(listed, Mapping) else None
    if not isinstance(calls, list):
        return None
    parsed = []
    for item in calls:
        function = item.get("functionCall") if isinstance(item, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name:
            return None
        arguments = parse_arguments(function.get("arguments"), name)  # type: ignore[union-attr]
        parsed.append(ToolCall(new_call_id(), name, arguments))
    return tuple(parsed)


def cumulative_delta(previous: str, current: str) -> str:
    """The new text in ``current``, a cumulative text that must extend ``previous``.

    Raises ``ValueError`` when ``current`` does not start with ``previous``.
    """
    if not current.startswith(previous):
        raise ValueError("the cumulative text does not extend the text received so far")
    return current[len(previous) :]


@dataclass(frozen=True, slots=True)
class Token:
    """One token of the tokenize endpoint's answer."""

    id: int
    text: str
    special: bool = False


def _usage(data: Any) -> Usage | None:
    """The vendor's token counts (int64 sent as strings); None when absent or when a count
    is not a non-negative integer (a garbled usage is not reported, rather than wrong)."""
    if not isinstance(data, Mapping):
        return None
    counts: dict[str, int] = {}
    for name, key in (
        ("prompt_tokens", "inputTextTokens"),
        ("completion_tokens", "completionTokens"),
        ("total_tokens", "totalTokens"),
    ):
        value = data.get(key)
        count = 0 if value is None else token_count(value)
        if count is None:
            return None
        counts[name] = count
    details = data.get("completionTokensDetails")
    reasoning = None
    if isinstance(details, Mapping) and details.get("reasoningTokens") is not None:
        reasoning = token_count(details["reasoningTokens"])
    return Usage(**counts, reasoning_tokens=reasoning)


@dataclass(frozen=True, slots=True)
class Alternative:
    """What ``result.alternatives[0]`` of an answer (or of one stream line) says."""

    #: The text (cumulative in a stream).
    text: str
    #: ``ALTERNATIVE_STATUS_*`` ("" when absent).
    status: str
    usage: Usage | None
    #: The model's tool calls (``toolCallList``), with made-up ids.
    tool_calls: tuple[ToolCall, ...] = ()


def parse_alternative(result: Any, *, usage: bool = True) -> Alternative | None:
    """``alternatives[0]`` of a ``result`` object, or None for any other shape (a message
    that is not an object, a text or status that is not a string...). ``usage=False``
    skips reading the token counts (a stream reads them from its final line only)."""
    try:
        alternative = result["alternatives"][0]
        message = alternative["message"]
        text = message.get("text")
        status = alternative.get("status")
        counts = result.get("usage") if usage else None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if text is None:
        text = ""
    if status is None:
        status = ""
    if not isinstance(text, str) or not isinstance(status, str):
        return None
    calls = parse_tool_calls(message)
    if calls is None:
        return None
    return Alternative(text, status, _usage(counts) if usage else None, calls)


def parse_completion(
    result: Any,
    *,
    provider: str,
    model: str,
    request_id: str | None,
    server_request_id: str | None = None,
    latency: float = 0.0,
) -> Completion:
    """The :class:`Completion` of a completion ``result`` (decoded JSON); any other shape
    raises :class:`ProviderError` (transient: a proxy's garbled answer may not repeat)."""
    alternative = parse_alternative(result)
    if alternative is None:
        raise ProviderError(
            "YandexGPT answered without a text or toolCallList in alternatives[0].message; "
            "check base_url",
            provider=provider,
            request_id=request_id,
            transient=True,
        )
    status = alternative.status or "ALTERNATIVE_STATUS_UNSPECIFIED"
    extra: dict[str, Any] = {"status": status, "model_uri": model}
    if result.get("modelVersion"):
        extra["model_version"] = result["modelVersion"]
    if server_request_id:
        extra["server_request_id"] = server_request_id
    return Completion(
        text=alternative.text,
        provider=provider,
        model=model,
        finish_reason="tool_calls" if alternative.tool_calls else _FINISH.get(status),
        usage=alternative.usage,
        request_id=request_id,
        latency=latency,
        extra=extra,
        tool_calls=alternative.tool_calls,
    )


#: Yandex's 400 messages about a model URI ("invalid model_uri", "Invalid modelUri",
#: "Failed to parse model URI").
_BAD_MODEL_URI = re.compile(r"model[ _]?uri", re.IGNORECASE)
_DEFAULT_EMBEDDING_MODELS = ("text-search-doc", "text-search-query")


def _short_embedding(model: str) -> str:
    """``doc`` / ``query`` / ``text-search-doc/latest`` -> ``text-search-doc``; anything
    else unchanged."""
    base, _, version = model.strip().partition("/")
    if "://" in model or version not in ("", "latest"):
        return model.strip()
    return _EMBEDDING_SHORT.get(base, base)


def _vector(raw: Any) -> list[float] | None:
    """An embedding as floats: JSON numbers, or numbers as strings (the generated API
    reference prints them so); None for anything else."""
    if not isinstance(raw, list) or not raw:
        return None
    vector = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            return None
        try:
            number = float(item)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        vector.append(number)
    return vector


@functools.lru_cache(maxsize=64)
def _absolute(base: str, url: str) -> httpx.URL:
    """``url`` (a path under ``base``, or already absolute), parsed once: given a relative
    path, httpx parses and merges a second URL on every call."""
    import httpx

    if "://" in url:
        return httpx.URL(url)
    return httpx.URL(base.rstrip("/") + "/" + url.lstrip("/"))


class _LineReader:
    """Splits a byte stream into lines without nesting more async generators (a
    half-consumed generator chain warns under trio when it is garbage collected).

    Linear in the body: each read is split once; only a line cut by the end of a read is
    kept back (as pieces), so a large read is never re-copied line by line.
    """

    __slots__ = ("_done", "_lines", "_next", "_partial", "_raw")

    def __init__(self, raw: AsyncIterator[bytes]) -> None:
        self._raw = raw
        self._lines: list[bytes] = []  # complete lines of the last read ...
        self._next = 0  # ... from this one on not yet returned
        self._partial: list[bytes] = []  # the start of a line whose end is not here yet
        self._done = False

    async def next_line(self) -> str | None:
        partial = self._partial
        while self._next >= len(self._lines):
            if self._done:
                return None
            try:
                data = await anext(self._raw)
            except StopAsyncIteration:
                self._done = True
                if partial:  # the body ended without a newline: its last line
                    self._lines, self._next = [b"".join(partial)], 0
                    partial.clear()
                continue
            if b"\n" not in data:
                if data:
                    partial.append(data)
                continue
            parts = data.split(b"\n")
            if partial:
                partial.append(parts[0])
                parts[0] = b"".join(partial)
                partial.clear()
            rest = parts.pop()
            if rest:
                partial.append(rest)
            self._lines, self._next = parts, 0
        self._next += 1
        return self._lines[self._next - 1].decode("utf-8", "replace")


class YandexGPTProvider(BaseProvider):
    """YandexGPT through the Foundation Models REST API (``llm.api.cloud.yandex.net``).

    Credentials: an API key, an IAM token, or an IAM token exchanged from an OAuth token or a
    service-account key (see :mod:`orchestrator_yandexgpt.auth`). Missing settings are read
    from ``YC_*`` environment variables (:data:`orchestrator_yandexgpt.config.ENV_VARS`).
    """

    config_class: ClassVar[type[YandexGPTConfig]] = YandexGPTConfig
    supports_model_override: ClassVar[bool] = True
    #: ``tools`` / ``toolChoice`` / ``toolCallList`` / ``toolResultList``.
    supports_tools: ClassVar[bool] = True
    #: Several calls in one ``toolCallList`` (``parallelToolCalls``, default true).
    supports_parallel_tool_calls: ClassVar[bool] = True
    #: ``jsonObject`` / ``jsonSchema`` natively.
    supports_structured_output: ClassVar[bool] = True
    emulator: ClassVar[str | None] = "orchestrator_yandexgpt.emulator:YandexGPTEmulator"

    DEFAULT_BASE_URL: ClassVar[str] = DEFAULT_BASE_URL

    config: YandexGPTConfig

    def __init__(
        self,
        config: Any,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(config, transport=transport)
        env = os.environ if environ is None else environ
        settings = resolve_settings(self.config, env)
        #: The folder the model lives in (config, ``YC_FOLDER_ID`` or the model URI).
        self.folder_id = settings.folder_id
        # (model, URI): checked now, rebuilt when ``config.model`` changes.
        self._model_uri = (self.config.model, model_uri(self.config.model, self.folder_id))
        for embedding_model in (self.config.embedding_doc_model, self.config.embedding_query_model):
            embedding_model_uri(embedding_model, self.folder_id)  # a bad name fails now
        base = self.config.base_url or base_url_from_env(env)
        self.base_url = (base or self.DEFAULT_BASE_URL).rstrip("/")
        self.auth_mode = settings.auth
        self.credentials = self._make_credentials(settings.auth, settings.credential)
        send_folder = self.config.send_folder_header
        self._send_folder = self.credentials.bearer if send_folder is None else send_folder

    @property
    def model_uri(self) -> str:
        """The full model URI sent as ``modelUri``, built from ``config.model`` as it is now
        (so ``provider.config.model = "yandexgpt"`` or ``--model`` reaches the wire)."""
        model = self.config.model
        if model != self._model_uri[0]:
            self._model_uri = (model, model_uri(model, self.folder_id))
        return self._model_uri[1]

    @classmethod
    def config_from_env(
        cls, name: str, environ: Mapping[str, str] | None = None
    ) -> YandexGPTConfig | None:
        """A config from the ``YC_*`` variables Yandex's SDK reads, or None when they hold
        no credential (or no folder: a warning then says to set ``YC_FOLDER_ID``).

        Raises :class:`ConfigurationError` naming the variable for a value that is wrong."""
        env = os.environ if environ is None else environ
        if not any(env.get(variable, "").strip() for variable in CREDENTIAL_ENV_VARS):
            return None
        try:
            settings = resolve_settings(YandexGPTConfig(name=name), env)
        except MissingFolderError as exc:
            # The message of a ConfigurationError is already redacted.
            logging.getLogger("orchestrator.providers.yandexgpt").warning(
                "YandexGPT credentials found in the environment but not used: %s", exc
            )
            return None
        values: dict[str, Any] = {
            "name": name,
            "folder_id": settings.folder_id,
            "auth": settings.auth,
            settings.auth: settings.credential,
        }
        endpoint = base_url_from_env(env)
        if endpoint:
            values["base_url"] = endpoint
        return YandexGPTConfig(**values)

    def _make_credentials(self, mode: str, credential: str) -> Credentials:
        if mode == "api_key":
            return ApiKeyAuth(credential)
        if mode == "iam_token":
            return IamTokenAuth(credential)
        key = ServiceAccountKey(credential) if mode == "service_account_key" else None
        return ExchangedIamAuth(
            iam_url=self.config.iam_url,
            refresh_interval=self.config.iam_refresh_interval,
            oauth_token=credential if key is None else None,
            service_account_key=key,
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} name={self.config.name!r} model={self.model_uri!r} "
            f"auth={self.auth_mode}>"
        )

    # -- HTTP ---------------------------------------------------------------------------

    def _create_http_client(self) -> httpx.AsyncClient:
        import httpx

        verify: bool | ssl.SSLContext = self.config.verify_ssl
        if self.config.verify_ssl and self.config.ca_bundle:
            try:
                verify = ssl.create_default_context(cafile=self.config.ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(
                    f"Cannot load the CA bundle {self.config.ca_bundle!r} ({exc}); point "
                    "ca_bundle at a readable PEM file"
                ) from None
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.config.timeout,
            verify=verify,
            transport=self._transport,
            follow_redirects=False,
        )

    async def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": await self.credentials.authorization(self),
            "x-client-request-id": str(uuid.uuid4()),
        }
        if self._send_folder:
            headers["x-folder-id"] = self.folder_id
        if not self.config.data_logging:
            headers["x-data-logging-enabled"] = "false"
        return headers

    async def _send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        stream: bool = False,
        what: str = "YandexGPT request",
    ) -> tuple[httpx.Response, str]:
        """Send one request; on 401 with refreshable credentials refresh once and resend.

        Returns the successful response and its ``x-client-request-id``; raises the typed
        error otherwise.
        """
        client = self.http_client()
        absolute = _absolute(self.base_url, url)
        for attempt in (1, 2):
            headers = await self._headers()
            request_id = headers["x-client-request-id"]
            with self._mapped(what, request_id):
                request = client.build_request(method, absolute, json=body, headers=headers)
                response = await client.send(request, stream=stream)
            self.logger.debug(
                "%s: %s %s -> %d (x-client-request-id %s)",
                self.name,
                method,
                request.url.path,
                response.status_code,
                request_id,
            )
            if response.status_code == 200:
                return response, request_id
            try:
                if stream:
                    with self._mapped(f"{what} (reading the error body)", request_id):
                        await response.aread()
            finally:
                await response.aclose()
            if (
                response.status_code == 401
                and attempt == 1
                and self.credentials.invalidate(headers["Authorization"])
            ):
                self.logger.info(
                    "%s: IAM token rejected (request %s); refreshing it", self.name, request_id
                )
                continue
            raise error_from_response(
                response.status_code,
                response.content,
                provider=self.name,
                request_id=request_id,
                headers=response.headers,
                what=what,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _mapped(self, what: str, request_id: str) -> AbstractContextManager[None]:
        """Map ``httpx`` exceptions inside to typed errors (the core's map, Yandex's hint)."""
        return mapped_transport_errors(
            self.name, what=f"{what} failed", request_id=request_id, tls_hint=TLS_HINT
        )

    def _decode(self, response: httpx.Response, request_id: str) -> Any:
        try:
            return json_loads(response.content)
        except (ValueError, RecursionError):
            raise ProviderError(
                "YandexGPT answered 200 with a body that is not JSON; check base_url",
                provider=self.name,
                status_code=response.status_code,
                request_id=request_id,
                transient=True,
            ) from None

    # -- request building ---------------------------------------------------------------

    def validate_params(self, params: GenerationParams) -> None:
        """Reject what YandexGPT cannot honour: temperature > 1, top_p, stop sequences."""
        if params.temperature > 1.0:
            raise InvalidRequestError(
                f"YandexGPT accepts temperature from 0 to 1, got {params.temperature:g}; "
                "pass temperature <= 1",
                provider=self.name,
            )
        if params.top_p != 1.0:
            raise InvalidRequestError(
                f"YandexGPT has no top_p option (got {params.top_p:g}); leave top_p at 1.0",
                provider=self.name,
            )
        if params.model is not None:
            try:
                model_uri(params.model, self.folder_id)
            except ConfigurationError as exc:
                raise InvalidRequestError(exc.message, provider=self.name) from None
        if params.stop:
            raise InvalidRequestError(
                "YandexGPT has no stop-sequence option; leave stop unset",
                provider=self.name,
            )

    def _messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        try:
            checked = coerce_messages(messages)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(str(exc), provider=self.name) from None
        return wire_messages(checked)

    def build_request(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        *,
        stream: bool = False,
    ) -> dict[str, Any]:
        """The JSON body of a completion request (validated; no network)."""
        options: dict[str, Any] = {"stream": stream}
        uri = self.model_uri
        extra: dict[str, Any] = {}
        if params is not None:
            self.validate_params(params)
            options["temperature"] = params.temperature
            options["maxTokens"] = str(params.max_tokens)
            if params.model is not None:
                uri = model_uri(params.model, self.folder_id)
            extra = wire_options(params)
        return {
            "modelUri": uri,
            "completionOptions": options,
            "messages": self._messages(messages),
            **extra,
        }

    def _completion(
        self, result: Any, request_id: str, started: float, response: httpx.Response, model: str
    ) -> Completion:
        return parse_completion(
            result,
            provider=self.name,
            model=model,
            request_id=request_id,
            server_request_id=response.headers.get("x-request-id"),
            latency=time.monotonic() - started,
        )

    # -- the contract -------------------------------------------------------------------

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        """The answer to ``prompt``; a refusal (``CONTENT_FILTER``) raises
        :class:`InvalidRequestError` instead of passing the refusal off as an answer."""
        completion = await self.chat([Message("user", prompt)], params)
        if completion.finish_reason == "content_filter":
            raise InvalidRequestError(
                "YandexGPT refused to answer this prompt (ALTERNATIVE_STATUS_CONTENT_FILTER); "
                "rephrase it, or use chat() to see the refusal text",
                provider=self.name,
                request_id=completion.request_id,
            )
        return completion.text

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        """Complete a conversation; ``finish_reason`` tells a refusal or a cut-off apart."""
        body = self.build_request(messages, params)

        async def attempt() -> Completion:
            started = time.monotonic()
            response, request_id = await self._send("POST", COMPLETION_PATH, body=body)
            data = self._decode(response, request_id)
            result = data.get("result", data) if isinstance(data, dict) else data
            return self._completion(result, request_id, started, response, body["modelUri"])

        return await self._retry_with_backoff(attempt)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        """Stream an answer as deltas; the last chunk carries the finish reason and usage.

        The API sends the whole text so far on every line; this yields only what is new.
        A stream that ends before a final status raises :class:`StreamError`.
        """
        body = self.build_request(messages, params, stream=True)
        response, request_id = await self._retry_with_backoff(
            self._send, "POST", COMPLETION_PATH, body=body, stream=True
        )
        raw = response.aiter_raw()
        try:
            async with aclosing(self._deltas(raw, request_id, body["modelUri"])) as deltas:
                async for chunk in deltas:
                    yield chunk
        finally:
            await release(response, raw)  # shielded, unless the body was read to its end

    def _stream_error(self, message: str, request_id: str, received: str) -> StreamError:
        return StreamError(
            f"YandexGPT stream {message} after {len(received)} characters of text",
            provider=self.name,
            request_id=request_id,
        )

    async def _deltas(
        self, raw: AsyncIterator[bytes], request_id: str, model: str
    ) -> AsyncGenerator[Chunk, None]:
        import httpx

        text = ""
        lines = _LineReader(raw)
        while True:
            data = await self._next_line(lines, request_id)
            if data is None:
                break
            info = parse_error_body(data) if "result" not in data else None
            if info is not None:
                raise error_from_info(
                    info,
                    status=None,
                    provider=self.name,
                    request_id=request_id,
                    what="YandexGPT stream",
                )
            result = data.get("result", data)
            # Every line repeats the usage so far; only the final line's is reported.
            alternative = parse_alternative(result, usage=False)
            if alternative is None:
                raise self._stream_error(
                    f"sent a line without a text or toolCallList in alternatives[0].message "
                    f"({body_excerpt(json.dumps(data), 120)!r})",
                    request_id,
                    text,
                )
            current, status = alternative.text, alternative.status
            try:
                delta = cumulative_delta(text, current)
            except ValueError:
                raise self._stream_error(
                    "rewrote text it had already sent", request_id, text
                ) from None
            text = current
            if status in _FINAL_STATUSES:
                calls = alternative.tool_calls
                yield Chunk(
                    delta=delta,
                    provider=self.name,
                    model=model,
                    finish_reason="tool_calls" if calls else _FINISH[status],
                    usage=_usage(result.get("usage")),
                    request_id=request_id,
                    tool_calls=calls,
                )
                # Read to the end of the body (the API closes it after the final line) so
                # the connection goes back to the pool instead of being dropped. The answer
                # is complete: a connection that breaks now does not fail it.
                with anyio.move_on_after(1.0), contextlib.suppress(httpx.HTTPError):
                    while await lines.next_line() is not None:
                        pass
                return
            if delta:
                yield Chunk(
                    delta=delta,
                    provider=self.name,
                    model=model,
                    request_id=request_id,
                )
        raise self._stream_error(
            "ended before a final status (the connection closed early)", request_id, text
        )

    async def _next_line(self, lines: _LineReader, request_id: str) -> dict[str, Any] | None:
        """The next decoded NDJSON object, None at the end; failures as StreamError."""
        import httpx

        while True:
            try:
                line = await lines.next_line()
            except httpx.HTTPError as exc:
                mapped = map_transport_error(exc, self.name, tls_hint=TLS_HINT)
                if mapped is None:
                    raise
                detail = mapped.message
                raise StreamError(
                    f"YandexGPT stream broke ({detail})",
                    provider=self.name,
                    request_id=request_id,
                ) from exc
            if line is None:
                return None
            line = line.strip()
            if not line:
                continue
            try:
                data = json_loads(line)
            except (ValueError, RecursionError):
                data = None
            if not isinstance(data, dict):
                raise StreamError(
                    "YandexGPT stream sent a line that is not a JSON object",
                    provider=self.name,
                    request_id=request_id,
                )
            return data

    # -- tokens, health, embeddings -----------------------------------------------------

    async def tokenize(self, text: str) -> list[Token]:
        """The model's tokens for ``text`` (a free call)."""
        response, request_id = await self._retry_with_backoff(
            self._send,
            "POST",
            TOKENIZE_PATH,
            body={"modelUri": self.model_uri, "text": text},
            what="YandexGPT tokenize",
        )
        return self._tokens(self._decode(response, request_id))

    @staticmethod
    def _tokens(data: Any) -> list[Token]:
        tokens = data.get("tokens", []) if isinstance(data, dict) else []
        return [
            Token(token_count(t.get("id")) or 0, str(t.get("text", "")), t.get("special") is True)
            for t in (tokens if isinstance(tokens, list) else [])
            if isinstance(t, dict)
        ]

    async def count_tokens(
        self, text_or_messages: str | Sequence[Message], params: GenerationParams | None = None
    ) -> int:
        """Tokens in a text, or in a whole conversation as the model will see it (free)."""
        if isinstance(text_or_messages, str):
            return len(await self.tokenize(text_or_messages))
        body = self.build_request(text_or_messages, params)
        response, request_id = await self._retry_with_backoff(
            self._send, "POST", TOKENIZE_COMPLETION_PATH, body=body, what="YandexGPT tokenize"
        )
        return len(self._tokens(self._decode(response, request_id)))

    async def health_check(self) -> bool:
        """True when the free tokenize endpoint accepts the key, folder and model."""
        try:
            with anyio.fail_after(min(self.config.timeout, 10.0)):
                await self._send(
                    "POST",
                    TOKENIZE_PATH,
                    body={"modelUri": self.model_uri, "text": "ping"},
                    what="YandexGPT health check",
                )
        except Exception as exc:
            mapped = exc if isinstance(exc, ProviderError) else map_transport_error(exc, None)
            self.logger.info(
                "%s: health check failed: %s: %s",
                self.name,
                type(exc).__name__,
                mapped if mapped is not None else "timed out",
            )
            return False
        return True

    def embedding_space(self) -> EmbeddingSpace:
        """The vector space of :meth:`embed`.

        ``text-search-doc`` and ``text-search-query`` are one space (made to be compared
        with each other), ``"yandexgpt/text-search"``: 256 numbers, one text per request.
        Other models (``embedding_doc_model`` / ``embedding_query_model``, e.g. a fine-tune)
        make a space of their own, named after them."""
        doc, query = self._embedding_models
        if (doc, query) == _DEFAULT_EMBEDDING_MODELS:
            name, model = "yandexgpt/text-search", "text-search"
        else:
            model = doc if doc == query else f"{doc}|{query}"
            name = f"yandexgpt/{model}"
        return EmbeddingSpace(name, model, self.config.embedding_dimension, max_batch=1)

    @property
    def _embedding_models(self) -> tuple[str, str]:
        """The configured document and query models as given (short names normalised)."""
        return (
            _short_embedding(self.config.embedding_doc_model),
            _short_embedding(self.config.embedding_query_model),
        )

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        """Embeddings of ``texts``, one request per text (the API takes one), in order.

        ``kind="document"`` uses ``embedding_doc_model`` (``text-search-doc``),
        ``kind="query"`` ``embedding_query_model`` (``text-search-query``). ``usage`` sums
        the ``numTokens`` of the answers (None when one did not report it). A single
        string is one text.
        """
        if kind not in ("document", "query"):
            raise ValueError(f"kind must be 'document' or 'query', got {kind!r}")
        items = [texts] if isinstance(texts, str) else list(texts)
        doc, query = self._embedding_models
        short = doc if kind == "document" else query
        uri = embedding_model_uri(short, self.folder_id)
        dimension = self.config.embedding_dimension
        vectors: list[list[float]] = []
        tokens: int | None = 0
        for text in items:
            vector, used = await self._retry_with_backoff(self._embed_one, text, uri, dimension)
            vectors.append(vector)
            tokens = None if tokens is None or used is None else tokens + used
        usage = None if tokens is None else Usage(tokens, 0, tokens)
        model = short if "://" not in short else uri
        space = self.embedding_space()
        return Embeddings(vectors, self.name, model, dimension, space.name, usage)

    async def _embed_one(
        self, text: str, uri: str, dimension: int
    ) -> tuple[list[float], int | None]:
        body = {"modelUri": uri, "text": text}
        what = "YandexGPT embedding"
        try:
            response, request_id = await self._send("POST", EMBEDDING_PATH, body=body, what=what)
        except InvalidRequestError as exc:
            if not _BAD_MODEL_URI.search(exc.message) or isinstance(exc, ModelNotFoundError):
                raise
            raise InvalidRequestError(
                f"{exc.message}; check embedding_doc_model / embedding_query_model "
                f"(sent modelUri {uri!r})",
                provider=exc.provider,
                status_code=exc.status_code,
                request_id=exc.request_id,
            ) from None
        data = self._decode(response, request_id)
        raw = data.get("embedding") if isinstance(data, dict) else None
        vector = _vector(raw)
        if vector is None:
            raise ProviderError(
                "YandexGPT answered textEmbedding without an embedding list of numbers; "
                "check base_url",
                provider=self.name,
                request_id=request_id,
                transient=True,
            )
        if len(vector) != dimension:
            raise ProviderError(
                f"YandexGPT answered textEmbedding with {len(vector)} numbers, not "
                f"{dimension}; set embedding_dimension to the model's dimension",
                provider=self.name,
                request_id=request_id,
            )
        return vector, token_count(data.get("numTokens"))

    # -- async (batch, half price) completion ---------------------------------------------

    def _operation_url(self, operation_id: str) -> str:
        return f"{self.config.operation_url.rstrip('/')}/operations/{operation_id}"

    async def submit_async(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> str:
        """Start an asynchronous completion (half price); returns the operation id."""
        body = self.build_request(messages, params)
        response, request_id = await self._retry_with_backoff(
            self._send, "POST", COMPLETION_ASYNC_PATH, body=body, what="YandexGPT async call"
        )
        data = self._decode(response, request_id)
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderError(
                "completionAsync returned no operation id",
                provider=self.name,
                request_id=request_id,
            )
        return str(data["id"])

    async def fetch_async(self, operation_id: str) -> Completion | None:
        """The result of an async completion, or None while it is still running."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", operation_id):
            raise InvalidRequestError(
                f"{operation_id!r} is not an operation id", provider=self.name
            )
        started = time.monotonic()
        response, request_id = await self._retry_with_backoff(
            self._send,
            "GET",
            self._operation_url(operation_id),
            what=f"YandexGPT operation {operation_id}",
        )
        data = self._decode(response, request_id)
        if not isinstance(data, dict) or not data.get("done"):
            return None
        info = parse_error_body({"error": data["error"]}) if data.get("error") else None
        if info is not None:
            raise error_from_info(
                info,
                status=None,
                provider=self.name,
                request_id=request_id,
                what=f"YandexGPT async completion {operation_id}",
            )
        # The operation's answer names its model version; the request's model is not kept.
        completion = self._completion(
            data.get("response"), request_id, started, response, self.model_uri
        )
        extra = {**completion.extra, "operation_id": operation_id}
        return Completion(
            text=completion.text,
            provider=completion.provider,
            model=completion.model,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            request_id=completion.request_id,
            latency=completion.latency,
            extra=extra,
        )

    async def chat_async(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        *,
        max_wait: float = 3600.0,
    ) -> Completion:
        """Submit an async completion and poll until it is done (every ``poll_interval``).

        Raises :class:`ProviderTimeoutError` after ``max_wait`` seconds; the operation keeps
        running and :meth:`fetch_async` can still collect it (results are kept 3 days).
        """
        operation_id = await self.submit_async(messages, params)
        with anyio.move_on_after(max_wait):
            while True:
                completion = await self.fetch_async(operation_id)
                if completion is not None:
                    return completion
                await anyio.sleep(self.config.poll_interval)
        raise ProviderTimeoutError(
            f"YandexGPT async completion {operation_id} was not done after {max_wait:g}s; "
            "collect it later with fetch_async()",
            provider=self.name,
            transient=False,
        )


#: The vendor's list prices as data (``prices.toml`` in this package, every figure with its
#: source and date). Set here, not in the package's ``__init__``, which imports this module
#: only on first use.
YandexGPTProvider.prices = load_price_list("orchestrator_yandexgpt")
