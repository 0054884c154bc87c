"""Shared measurement machinery: interleaved timing, statistics across rounds, the machine,
and the result rows every module of the benchmark produces.

Nothing here (or anywhere in ``bench/``) asserts a timing: targets are marked, not enforced.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Call = Callable[[], Awaitable[Any]]


def percentile(data: Sequence[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Spread:
    """One figure measured in several rounds: median, min and max across the rounds."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def text(self, digits: int = 1, unit: str = "") -> str:
        if not self.values:
            return "n/a"
        med = f"{self.median:.{digits}f}{unit}"
        if len(self.values) == 1:
            return med
        lo, hi = min(self.values), max(self.values)
        return f"{med} ({lo:.{digits}f} … {hi:.{digits}f})"


@dataclass
class Timing:
    """Per-call wall times (µs) and the summed CPU time (µs) of one variant in one round."""

    wall: list[float] = field(default_factory=list)
    cpu: float = 0.0

    @property
    def p50(self) -> float:
        return percentile(self.wall, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.wall, 0.99)

    @property
    def cpu_per_call(self) -> float:
        return self.cpu / len(self.wall) if self.wall else float("nan")


async def interleaved(
    variants: dict[str, Call], n: int, warmup: int, settle: Call | None = None
) -> dict[str, Timing]:
    """Call every variant once per iteration, rotating which goes first, ``n`` times.

    Interleaving spreads drift (frequency scaling, the other process on the machine, the
    allocator's state) over every variant equally; each call is timed alone, wall-clock
    (``perf_counter_ns``) and CPU (``process_time_ns``).

    ``settle``, awaited after every call and timed with none, puts the process back in the
    same state before the next call: waits out work a call left behind (background tasks,
    a logging thread) and re-warms caches, so one variant's leftovers are not charged to
    whichever variant follows it.
    """
    names = list(variants)
    calls = [variants[name] for name in names]
    for _ in range(warmup):
        for call in calls:
            await call()
    timings = [Timing() for _ in names]
    gc.collect()
    count = len(calls)
    wall_clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    for i in range(n):
        for k in range(count):
            j = (i + k) % count
            cpu0 = cpu_clock()
            t0 = wall_clock()
            await calls[j]()
            t1 = wall_clock()
            cpu1 = cpu_clock()
            if settle is not None:
                await settle()
            timing = timings[j]
            timing.wall.append((t1 - t0) / 1000)
            timing.cpu += (cpu1 - cpu0) / 1000
    return dict(zip(names, timings, strict=True))


@dataclass
class Row:
    """One line of a results table; ``target``/``ok`` make it a target row (✅/❌)."""

    what: str
    cells: list[str]
    target: str = ""
    ok: bool | None = None

    def mark(self) -> str:
        if self.ok is None:
            return ""
        return "✅ pass" if self.ok else "❌ miss"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[Row] = field(default_factory=list)
    note: str = ""

    def add(self, what: str, *cells: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(what, list(cells), target, ok))

    def markdown(self) -> str:
        targets = any(row.target or row.ok is not None for row in self.rows)
        header = ["measurement", *self.header] + (["target", "mark"] if targets else [])
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row.what, *row.cells] + ([row.target, row.mark()] if targets else [])
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, nproc {nproc}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}; "
        f"load average at the start {load}"
    )


def rss_mib() -> float:
    """Resident set size of this process, MiB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raise_fd_limit(want: int = 4096) -> None:
    """Lift the soft limit on open files towards ``want`` (the memory rows hold 1,000
    sockets on each side; a default soft limit of 1,024 would refuse some)."""
    try:
        import resource
    except ImportError:  # not on Unix: nothing to do
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
