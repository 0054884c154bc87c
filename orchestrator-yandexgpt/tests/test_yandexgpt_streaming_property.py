"""Hypothesis: however the emulator splits the cumulative stream, the deltas join to exactly
the non-streamed answer (over real sockets, on both backends)."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.testing import LoopbackServer
from orchestrator.types import Message
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import YandexGPTEmulator, config_for

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=8,
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    prompt=st.lists(words, min_size=0, max_size=30),
    sizes=st.lists(st.integers(min_value=1, max_value=6), max_size=10),
)
def test_stream_reassembles_to_the_plain_answer(
    server: LoopbackServer, backend: str, prompt: list[str], sizes: list[int]
) -> None:
    emulator: YandexGPTEmulator = server.app
    provider = YandexGPTProvider(config_for(server), environ={})
    messages = [Message("user", " ".join(prompt))]

    async def main() -> tuple[str, list[str], str | None]:
        async with provider:
            plain = await provider.chat(messages)
            emulator.chunk_next_stream(sizes)
            chunks = [c async for c in provider.stream(messages)]
        assert all(c.finish_reason is None for c in chunks[:-1])
        return plain.text, [c.delta for c in chunks], chunks[-1].finish_reason

    plain, deltas, finish = anyio.run(main, backend=backend)
    assert "".join(deltas) == plain
    assert finish == "stop"
    assert all(deltas[:-1])  # no empty chunk in the middle of a stream
