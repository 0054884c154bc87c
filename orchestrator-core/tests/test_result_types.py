"""``Usage``, ``Completion`` and ``Chunk`` are frozen dataclasses built by a generated
constructor (``types._fast_init``): they must behave exactly like the plain frozen ones."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.types import Chunk, Completion, ToolCall, Usage

TYPES = (Usage, Completion, Chunk)

texts = st.text(max_size=20)
optional = st.none() | texts
usages = st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
chunks = st.builds(
    Chunk,
    delta=texts,
    provider=texts,
    model=optional,
    finish_reason=st.sampled_from([None, "stop", "length", "tool_calls"]),
    usage=st.none() | usages,
    request_id=optional,
    cost=st.none() | st.decimals(allow_nan=False, places=4),
    tool_calls=st.just(()) | st.just((ToolCall("c1", "f", {"a": 1}),)),
)


def _reference(cls: type[Any]) -> type[Any]:
    """The same fields as a plain frozen slotted dataclass."""
    return dataclasses.make_dataclass(
        f"Plain{cls.__name__}",
        [(f.name, f.type, f) for f in dataclasses.fields(cls)],
        frozen=True,
        slots=True,
    )


@given(chunks)
def test_a_chunk_holds_what_it_was_given_like_a_plain_frozen_dataclass(chunk: Chunk) -> None:
    values = {f.name: getattr(chunk, f.name) for f in dataclasses.fields(Chunk)}
    plain = _reference(Chunk)(**values)
    assert dataclasses.astuple(chunk) == dataclasses.astuple(plain)
    assert Chunk(**values) == chunk
    if not chunk.tool_calls:  # a tool call's arguments are a dict: unhashable, as before
        assert hash(Chunk(**values)) == hash(chunk)
    assert type(chunk) is Chunk
    assert pickle.loads(pickle.dumps(chunk)) == chunk  # noqa: S301 - our own bytes
    assert copy.copy(chunk) == chunk
    assert copy.deepcopy(chunk) == chunk
    assert dataclasses.replace(chunk, delta=chunk.delta + "x").delta == chunk.delta + "x"


@pytest.mark.parametrize("cls", TYPES)
def test_instances_stay_frozen(cls: type[Any]) -> None:
    fields = dataclasses.fields(cls)
    first = fields[0].name
    required = [f for f in fields if f.default is f.default_factory is dataclasses.MISSING]
    instance = cls(*["x"] * len(required))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(instance, first, "y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(instance, first)
    assert not hasattr(instance, "__dict__")


@pytest.mark.parametrize("cls", TYPES)
def test_the_signature_is_the_dataclass_one(cls: type[Any]) -> None:
    signature = inspect.signature(cls)
    assert list(signature.parameters) == [f.name for f in dataclasses.fields(cls)]
    reference = inspect.signature(_reference(cls))
    assert [p.default for p in signature.parameters.values()] == [
        p.default for p in reference.parameters.values()
    ]


def test_positional_keyword_missing_and_unknown_arguments() -> None:
    assert Chunk("a", "p") == Chunk(delta="a", provider="p")
    with pytest.raises(TypeError, match="delta"):
        Chunk()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="colour"):
        Chunk("a", colour=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Chunk("a", "p", None, None, None, None, None, (), None, "one too many")  # type: ignore[call-arg]


def test_a_default_factory_gives_each_instance_its_own_value() -> None:
    first, second = Completion("a", "p"), Completion("b", "p")
    assert first.extra == {} and first.extra is not second.extra
    assert Completion("a", "p", extra={"k": 1}).extra == {"k": 1}


def test_subclasses_are_built_by_the_frozen_init() -> None:
    class Tagged(Chunk):  # has a __dict__: another layout than Chunk's
        pass

    tagged = Tagged("a", cost=Decimal("0.5"))
    assert type(tagged) is Tagged
    assert (tagged.delta, tagged.cost, tagged.tool_calls) == ("a", Decimal("0.5"), ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        tagged.delta = "b"  # type: ignore[misc]

    class Extended(Completion):
        pass

    extended = Extended("t", "p")
    assert extended.extra == {} and extended.extra is not Extended("u", "p").extra
