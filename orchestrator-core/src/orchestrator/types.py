"""The data that flows through the router: messages in; completions and chunks out.

``Message``, ``ToolCall``, ``Usage``, ``Completion``, ``Chunk`` and ``Embeddings`` are slotted
dataclasses (they are on the hot path of every call); ``GenerationParams`` is a pydantic model
because it validates user input before any network call. It lives in
:mod:`orchestrator.params` and is imported from here on first use, so
``from orchestrator import Router`` does not build a pydantic model. Tool definitions and
response formats (``Tool``, ``ResponseFormat``) live in :mod:`orchestrator.tools`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from orchestrator.params import GenerationParams


__all__ = [
    "Chunk",
    "Completion",
    "EmbeddingKind",
    "Embeddings",
    "FinishReason",
    "GenerationParams",
    "Message",
    "Role",
    "ToolCall",
    "Usage",
    "coerce_messages",
]

_T = TypeVar("_T")


def _fast_init(cls: type[_T]) -> type[_T]:
    """Build instances of a frozen slotted dataclass at the cost of a mutable one.

    A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``: about
    1.1 µs for a nine-field :class:`Chunk`, a third of what a streamed chunk may cost. Here
    ``cls(...)`` fills a mutable twin with the same slots (plain attribute stores) and then
    makes it a ``cls`` by assigning ``__class__``, which Python allows between classes of
    one layout: 0.45 µs. The constructor is generated like dataclasses' own, with the same
    signature and defaults. The instance is the frozen class's in every way (immutable,
    hashable, ``replace``, ``fields``, ``repr``, pickling); a subclass of another layout is
    built by the frozen ``__init__``, as before.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    twin = type(f"_{cls.__name__}Init", (), {"__slots__": tuple(f.name for f in fields)})
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_twin": twin,
        "_init": cls.__init__,
        "_missing": dataclasses.MISSING,
    }
    params, factories = [], []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_missing")
            factories.append(f"    if {f.name} is _missing: {f.name} = _factory_{f.name}()")
        else:
            params.append(f.name)
    arguments = ", ".join(f.name for f in fields)
    source = "\n".join(
        [
            f"def __new__(kind, {', '.join(params)}):",
            *factories,
            "    if kind is not _cls:",
            "        self = object.__new__(kind)",
            f"        _init(self, {arguments})",
            "        return self",
            "    self = object.__new__(_twin)",
            *(f"    self.{f.name} = {f.name}" for f in fields),
            "    self.__class__ = _cls",
            "    return self",
        ]
    )
    exec(source, namespace)  # noqa: S102 - generated from the field names, as dataclasses does
    new = namespace["__new__"]
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    new.__doc__ = cls.__init__.__doc__
    new.__signature__ = inspect.signature(cls.__init__)  # what help() and IDEs show

    def __reduce__(self: Any) -> tuple[Any, ...]:
        return type(self), tuple(getattr(self, f.name) for f in fields)

    cls.__new__ = new  # type: ignore[method-assign]
    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    del cls.__init__  # object.__init__ accepts the arguments once __new__ is overridden
    return cls


#: ``tool`` messages carry a tool's result back to the model (see :meth:`Message.tool_result`).
Role = Literal["system", "user", "assistant", "tool"]
_ROLES = frozenset(("system", "user", "assistant", "tool"))
#: What a text is embedded as: a document to search in, or a query to search with. Vendors
#: with one model for both (GigaChat) ignore it; YandexGPT has a model for each.
EmbeddingKind = Literal["document", "query"]

#: Why generation stopped. ``content_filter`` means the vendor refused (GigaChat
#: ``blacklist``, YandexGPT ``CONTENT_FILTER``): the text is not a normal answer.
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "function_call", "error"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool: ``arguments`` is the decoded JSON object.

    ``id`` pairs the call with its result (:meth:`Message.tool_result`); vendors without call
    ids (GigaChat, YandexGPT's native API) get one made up by their provider.
    """

    id: str
    name: str
    arguments: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ToolCall id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ToolCall name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.arguments, Mapping):
            raise TypeError(
                f"ToolCall arguments must be a dict (the decoded JSON object), "
                f"got {type(self.arguments).__name__}"
            )

    def arguments_json(self) -> str:
        """The arguments as a JSON string (what OpenAI-style APIs send)."""
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``role`` is ``system``, ``user``, ``assistant`` or ``tool``.

    An ``assistant`` message may carry ``tool_calls`` (its ``content`` is then usually
    empty); a ``tool`` message carries one call's result in ``content``, with the call's
    ``tool_call_id`` and the tool's ``name`` (build it with :meth:`tool_result`).
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    #: The tool whose result a ``tool`` message carries.
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(
                f"Message role must be one of system, user, assistant, tool; got {self.role!r}"
            )
        if not isinstance(self.content, str):
            raise TypeError(f"Message content must be str, got {type(self.content).__name__}")
        if (
            self.tool_calls
            or self.role == "tool"
            or self.tool_call_id is not None
            or self.name is not None
        ):
            self._check_tool_fields()

    def _check_tool_fields(self) -> None:
        calls: Any = self.tool_calls
        if not isinstance(calls, tuple):
            if not isinstance(calls, Sequence) or isinstance(calls, str):
                raise TypeError("Message tool_calls must be a sequence of ToolCall")
            calls = tuple(calls)
            object.__setattr__(self, "tool_calls", calls)
        if calls:
            if self.role != "assistant":
                raise ValueError("only an assistant message can carry tool_calls")
            for call in calls:
                if not isinstance(call, ToolCall):
                    raise TypeError(
                        f"Message tool_calls must hold ToolCall objects, got {type(call).__name__}"
                    )
        if self.role == "tool":
            if not isinstance(self.tool_call_id, str) or not self.tool_call_id:
                raise ValueError(
                    "a tool message needs the tool_call_id of the call it answers; "
                    "build it with Message.tool_result(call, result)"
                )
        elif self.tool_call_id is not None or self.name is not None:
            raise ValueError("tool_call_id and name belong on a tool message only")

    @classmethod
    def tool_result(cls, call: ToolCall, result: Any) -> Message:
        """The message that gives ``call``'s ``result`` back to the model. A result that is
        not a string is sent as JSON."""
        if not isinstance(call, ToolCall):
            raise TypeError(f"tool_result() needs the ToolCall, got {type(call).__name__}")
        content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        return cls("tool", content, tool_call_id=call.id, name=call.name)


_MESSAGE_KEYS = frozenset(("role", "content", "tool_calls", "tool_call_id", "name"))
_role_of = operator.attrgetter("role")


def coerce_messages(
    messages: Iterable[Message | Mapping[str, Any]] | str,
) -> tuple[Message, ...]:
    """Validate ``messages`` (``Message`` objects or dicts with ``role`` and ``content``, and
    for tool use ``tool_calls``, ``tool_call_id``, ``name``).

    Raises ``ValueError`` for an empty list, an unknown role, unexpected keys, or a tool
    result that answers no earlier tool call, so bad input fails before any network call.
    A tool result without ``name`` gets the name of the call it answers. Dict tool calls may
    be ``{"id", "name", "arguments"}`` or OpenAI's
    ``{"id", "type": "function", "function": {"name", "arguments": "<JSON>"}}``.
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    if isinstance(messages, tuple | list):
        # Fast path: Message objects were validated when built; counting their types runs in
        # C (countOf compares by identity first; a third faster than building a set).
        as_tuple = tuple(messages)
        if as_tuple and operator.countOf(map(type, as_tuple), Message) == len(as_tuple):
            if "tool" not in map(_role_of, as_tuple):
                return as_tuple
            return _link_tool_results(as_tuple)
    result: list[Message] = []
    for index, item in enumerate(messages):
        if isinstance(item, Message):
            result.append(item)
            continue
        if not isinstance(item, Mapping):
            raise TypeError(
                f"messages[{index}] must be a Message or a dict, got {type(item).__name__}"
            )
        unknown = set(item) - _MESSAGE_KEYS
        if unknown:
            raise ValueError(
                f"messages[{index}] has unsupported keys {sorted(unknown)}; "
                f"understood: {', '.join(sorted(_MESSAGE_KEYS))}"
            )
        try:
            content = item["content"]
            if content is None and (item.get("tool_calls") or item.get("role") == "assistant"):
                content = ""  # OpenAI sends null content beside tool calls
            result.append(
                Message(
                    item["role"],
                    content,
                    tuple(_tool_call(c) for c in item.get("tool_calls") or ()),
                    item.get("tool_call_id"),
                    item.get("name"),
                )
            )
        except KeyError as exc:
            raise ValueError(f"messages[{index}] is missing {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"messages[{index}]: {exc}") from None
    if not result:
        raise ValueError("messages must contain at least one message")
    return _link_tool_results(tuple(result))


def _tool_call(value: Any) -> ToolCall:
    """A ToolCall from a ToolCall or a dict (ours, or OpenAI's nested shape)."""
    if isinstance(value, ToolCall):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"a tool call must be a ToolCall or a dict, got {type(value).__name__}")
    function = value.get("function")
    if isinstance(function, Mapping):  # OpenAI: {"id", "type", "function": {name, arguments}}
        name, arguments = function.get("name"), function.get("arguments")
    else:
        name, arguments = value.get("name"), value.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise ValueError(f"tool call {name!r}: arguments are not valid JSON") from None
    if arguments is None:
        arguments = {}
    call_id = value.get("id")
    return ToolCall("" if call_id is None else call_id, name, arguments)  # type: ignore[arg-type]


def _link_tool_results(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """Check that each tool result answers an earlier tool call, and give it the call's name
    when it has none (vendors match results by name: GigaChat, YandexGPT)."""
    calls: dict[str, ToolCall] = {}
    linked = list(messages)
    for index, message in enumerate(messages):
        for call in message.tool_calls:
            calls[call.id] = call
        if message.role != "tool":
            continue
        answered = calls.get(message.tool_call_id or "")
        if answered is None:
            raise ValueError(
                f"messages[{index}] is a tool result for call {message.tool_call_id!r}, "
                "but no earlier assistant message made that call; send the assistant "
                "message with its tool_calls before the results"
            )
        if message.name is None:
            linked[index] = Message(
                "tool", message.content, (), message.tool_call_id, answered.name
            )
        elif message.name != answered.name:
            raise ValueError(
                f"messages[{index}] answers call {answered.id!r} to {answered.name!r} "
                f"but is named {message.name!r}"
            )
    return tuple(linked)


@_fast_init
@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts exactly as the vendor reported them (never re-estimated)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Prompt tokens served from the vendor's cache (GigaChat ``precached_prompt_tokens``).
    cached_prompt_tokens: int | None = None
    #: Tokens spent on hidden reasoning (YandexGPT ``reasoningTokens``).
    reasoning_tokens: int | None = None


@_fast_init
@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer."""

    text: str
    provider: str
    model: str | None = None
    finish_reason: FinishReason | None = "stop"
    usage: Usage | None = None
    #: The vendor's request id (what their support asks for).
    request_id: str | None = None
    #: Seconds from the start of the successful attempt to the answer.
    latency: float = 0.0
    #: Cost in roubles, when a price is known for this provider and model.
    cost: Decimal | None = None
    #: Vendor fields the common shape has no place for (e.g. the model version).
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The tools the model asked to call (``finish_reason == "tool_calls"``), whole.
    tool_calls: tuple[ToolCall, ...] = ()
    #: With ``response_format``: the answer parsed and validated (a pydantic model's
    #: instance, or the decoded JSON for a JSON Schema).
    parsed: Any = None


@_fast_init
@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed answer: ``delta`` is new text only (never cumulative).

    The last chunk of a stream carries ``finish_reason`` and, when the vendor reports it,
    ``usage``. Tool calls arrive whole (``tool_calls``), never as half an argument string;
    with ``response_format`` the last chunk carries the validated answer in ``parsed``.
    """

    delta: str
    provider: str = ""
    model: str | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    request_id: str | None = None
    #: Cost in roubles of the whole stream, set by the router on the last chunk.
    cost: Decimal | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    #: With ``response_format``: the whole answer parsed (last chunk only).
    parsed: Any = None


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors for a batch of texts, in the order of the texts, all from one ``model``.

    ``space`` names the vector space (see :meth:`BaseProvider.embedding_space`): vectors of
    one space are comparable, vectors of two spaces are not.
    """

    vectors: Sequence[Sequence[float]]
    provider: str
    model: str
    dimension: int
    space: str = ""
    usage: Usage | None = None
    #: Cost in roubles, when a price is known for this provider and model.
    cost: Decimal | None = None

    def __len__(self) -> int:
        return len(self.vectors)


def __getattr__(name: str) -> Any:
    if name == "GenerationParams":
        from orchestrator.params import GenerationParams

        return GenerationParams
    raise AttributeError(f"module 'orchestrator.types' has no attribute {name!r}")
