"""The plugin template's provider (as the guide shows it) reads any JSON without a bare
TypeError/AttributeError: its shape checks return None for what they cannot read."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "creating-a-provider.md"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(valid, valid, json_values)


answers = maybe(
    st.fixed_dictionaries(
        {
            "choices": maybe(
                st.lists(
                    maybe(
                        st.fixed_dictionaries(
                            {
                                "message": maybe(
                                    st.fixed_dictionaries({"content": maybe(st.text())})
                                ),
                                "delta": maybe(
                                    st.fixed_dictionaries({"content": maybe(st.text())})
                                ),
                                "finish_reason": maybe(st.sampled_from(["stop", "length"])),
                            }
                        )
                    ),
                    max_size=2,
                )
            )
        },
        optional={
            "usage": maybe(
                st.fixed_dictionaries(
                    {"prompt_tokens": maybe(st.integers(min_value=0))},
                    optional={"completion_tokens": json_values},
                )
            ),
            "model": json_values,
        },
    )
)


@pytest.fixture(scope="module")
def guide() -> types.ModuleType:
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(r"```python\n# src/orchestrator_acme/provider\.py\n(.*?)```", text, re.S)
    assert match, "the guide's provider block is missing"
    module = types.ModuleType("guide_acme_shapes")
    exec(compile(match.group(1), str(GUIDE), "exec"), module.__dict__)  # noqa: S102
    return module


@given(data=st.one_of(answers, json_values))
def test_shape_checks_never_raise(guide: types.ModuleType, data: Any) -> None:
    answer = guide._completion(data)
    if answer is not None:
        assert isinstance(answer[0], str)
    fields = guide._event(data)
    if fields is not None:
        assert all(isinstance(text, str) for text in fields[0])
    usage = guide._usage(data.get("usage") if isinstance(data, dict) else data)
    if usage is not None:
        assert all(type(n) is int and n >= 0 for n in (usage.prompt_tokens, usage.total_tokens))
    assert guide._finish_reason(data) in {
        "stop",
        "length",
        "content_filter",
        "tool_calls",
        "function_call",
    }


def test_the_issue_s_wrong_shapes(guide: types.ModuleType) -> None:
    assert guide._event({"choices": [None]}) is None
    assert guide._event({"choices": [{"delta": "hi"}]}) is None
    assert guide._event({"choices": [{"delta": {"content": 5}}]}) is None
    assert guide._completion({"choices": [{"message": {"content": 5}}]}) is None
    assert guide._usage({"prompt_tokens": "n/a"}) is None
