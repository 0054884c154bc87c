"""Where the stack's extra time goes: cProfile of raw httpx, provider and Router doing the
same in-memory calls, and the functions whose own time (per call) grew the most over raw.

    python bench/overhead.py --profile     # prints the tables; measures nothing else

cProfile slows small functions more than large ones, so read the ranking, not the absolute
numbers (the latency tables are the measurement).
"""

from __future__ import annotations

import cProfile
import gc
import pstats
from pathlib import Path
from typing import Any

from _common import ROOT, Table
from fullstack import Subject

Key = tuple[str, int, str]


async def _profile(variants: dict[str, Any], n: int) -> dict[str, dict[Key, float]]:
    """One profiler per variant, switched on around each of its calls; calls interleaved."""
    for _ in range(max(5, n // 10)):
        for call in variants.values():
            await call()
    profilers = {name: cProfile.Profile() for name in variants}
    gc.collect()
    gc.disable()  # a collection would land on whichever variant happens to run
    try:
        for _ in range(n):
            for name, call in variants.items():
                profiler = profilers[name]
                profiler.enable()
                await call()
                profiler.disable()
    finally:
        gc.enable()
    out = {}
    for name, profiler in profilers.items():
        stats: Any = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        out[name] = {key: value[2] * 1e6 / n for key, value in stats.items()}  # µs per call
    return out


def _where(key: Key) -> str:
    file, line, name = key
    parts = Path(file).parts
    if "site-packages" in parts:
        shown = "/".join(parts[parts.index("site-packages") + 1 :])
    elif file.startswith(str(ROOT)):
        shown = str(Path(file).relative_to(ROOT))
    elif "lib" in parts:
        shown = "/".join(parts[len(parts) - parts[::-1].index("lib") + 1 :])
    else:
        shown = file
    return f"`{shown}:{line}` {name}" if line else f"`{name}`"


async def profile(subject: Subject, key: str, n: int, top: int = 12) -> Table:
    subject.use(key)
    variants = subject.variants(key)
    own = await _profile(variants, n)
    raw = own["raw"]
    totals = {name: sum(times.values()) for name, times in own.items()}
    table = Table(
        f"{subject.vendor.name}, {subject.setting}, {key}: own time per call over raw httpx "
        f"(cProfile µs; totals raw {totals['raw']:.0f}, provider {totals['provider']:.0f}, "
        f"Router {totals['router']:.0f})",
        ["provider - raw", "Router - raw"],
    )
    extra = {
        k: (own["provider"].get(k, 0.0) - raw.get(k, 0.0), t - raw.get(k, 0.0))
        for k, t in own["router"].items()
    }
    for k, (p, r) in sorted(extra.items(), key=lambda item: -item[1][1])[:top]:
        table.add(_where(k), f"{p:.1f}", f"{r:.1f}")
    return table
