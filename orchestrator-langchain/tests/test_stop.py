"""Stop sequences applied by the adapter: a streamed answer is cut exactly where the whole
answer would be, however it was split into chunks."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator_langchain._convert import StopCutter, cut_at_stop

TEXT = st.text(alphabet="ab c", max_size=30)


@settings(deadline=None)  # no timing: a loaded machine must not fail a correct property
@given(TEXT, st.lists(st.text(alphabet="ab c", min_size=1, max_size=3), max_size=3), st.data())
def test_a_stream_is_cut_where_the_whole_text_is(
    text: str, stops: list[str], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=6)))
    bounds = [0, *cuts, len(text)]
    deltas = [text[a:b] for a, b in itertools.pairwise(bounds)]
    cutter = StopCutter(stops)
    shown = "".join(cutter.feed(d) for d in deltas) + cutter.flush()
    expected, found = cut_at_stop(text, stops)
    assert shown == expected
    assert cutter.done is found


def test_examples() -> None:
    assert cut_at_stop("Hello you there", ["you"]) == ("Hello ", True)
    assert cut_at_stop("Hello", ["x", ""]) == ("Hello", False)
    cutter = StopCutter(["END"])
    assert [cutter.feed(d) for d in ["abc E", "N", "xD", "E", "ND more"]] == [
        "abc ",
        "",
        "ENxD",
        "",
        "",
    ]
    assert cutter.done and cutter.flush() == ""
