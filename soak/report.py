"""Tables (Markdown, so docs/reliability.md can quote a run as printed) and the verdict."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

from soak.chaos import Result
from soak.faults import NAMES

#: RSS may grow this much from a third of the run to its end (allocator noise, caches that
#: fill once such as TLS sessions and per-loop clients); a leak per request grows without bound.
MEMORY_BOUND_MIB = 24.0
MIB = 1024 * 1024


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table with aligned columns."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def outcomes(result: Result) -> str:
    """How requests ended, for chats and streams."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for record in result.records:
        counts[(record.outcome, record.plan.kind)] += 1
    labels = sorted({o for o, _ in counts}, key=lambda o: (o != "ok", o.startswith("BUG"), o))
    rows = [
        (
            label,
            counts[(label, "chat")],
            counts[(label, "stream")],
            sum(counts[(label, k)] for k in ("chat", "stream")),
        )
        for label in labels
    ]
    rows.append(
        (
            "**total**",
            sum(1 for r in result.records if r.plan.kind == "chat"),
            sum(1 for r in result.records if r.plan.kind == "stream"),
            len(result.records),
        )
    )
    return table(("outcome", "chat", "stream", "all"), rows)


def faults(result: Result) -> str:
    """How many faults of each kind were scripted on each backend."""
    backends = result.providers
    rows: list[tuple[object, ...]] = [
        (name, *(result.faults[(name, b)] for b in backends)) for name in NAMES
    ]
    rows.append(
        ("connect refused (server restarts)", *(result.restarts.get(b, 0) for b in backends))
    )
    return table(("fault", *backends), rows)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: object
    limit: str
    ok: bool


def _count(result: Result, *prefixes: str) -> int:
    return sum(1 for r in result.records for v in r.violations if v.startswith(prefixes))


def _zero(name: str, count: int) -> Check:
    return Check(name, count, "0", count == 0)


def verdict(result: Result) -> list[Check]:
    """Every assertion of the soak, measured."""
    busy = sum(b + q for b, q in result.pools.values())
    counters = {k: v for k, v in result.counters.items() if v}
    incidents = result.incidents
    checks = [
        _zero(
            "bugs escaping as non-typed errors",
            sum(1 for r in result.records if r.outcome.startswith("BUG")),
        ),
        _zero("hung requests", sum(1 for r in result.records if r.hung)),
        _zero("mixed streams", _count(result, "mixed")),
        _zero(
            "wrong-shape content delivered as text (not a str, or never sent as text)",
            _count(result, "non-str text", "text no emulator sent"),
        ),
        _zero("truncated streams ending as success", _count(result, "truncated")),
        _zero("usage mismatches", _count(result, "usage mismatch")),
        _zero("partial_text not what the caller got", _count(result, "partial_text")),
        Check(
            "connections busy or queued in the pools at the end",
            _pools(result.pools, result.pools_later),
            "0",
            busy == 0,
        ),
        _zero("tasks pending at the end", len(result.pending_tasks)),
        Check(
            "router counters not back to 0",
            ", ".join(f"{k}={v}" for k, v in counters.items()) or 0,
            "0",
            not counters,
        ),
        _zero("ResourceWarnings", len(incidents.resource_warnings)),
        _zero(
            "other warnings, unraisable exceptions",
            len(incidents.warnings) - len(incidents.resource_warnings) + len(incidents.unraisable),
        ),
        _zero("emulator errors (besides scripted resets)", len(incidents.server_errors)),
        _zero("asyncio transport errors on the client's loop", len(incidents.client_log)),
    ]
    if result.shared is not None:
        shared = result.shared
        checks.append(
            Check(
                "Redis killed and restarted; the router noticed and came back",
                f"{result.restarts['redis']} kill(s), {shared['faults']} fault(s), "
                f"{'connected' if shared['connected'] else 'NOT connected'} at the end"
                + ("" if shared["connected"] else f" (last fault: {shared['last_fault']})"),
                ">= 1 kill, >= 1 fault, connected",
                result.restarts["redis"] >= 1 and shared["faults"] >= 1 and shared["connected"],
            )
        )
        checks.append(
            _zero("shared totals differing from the router's own", len(shared["mismatches"]))
        )
    if result.concurrency == 1:
        checks.append(_zero("requests that left a connection busy", _count(result, "left")))
    if result.rss_third is not None and result.rss_end is not None:
        growth = (result.rss_end - result.rss_third) / MIB
        checks.append(
            Check(
                "RSS growth from 1/3 to the end",
                f"{growth:+.1f} MiB ({result.rss_third / MIB:.0f} -> {result.rss_end / MIB:.0f})",
                f"<= {MEMORY_BOUND_MIB:g} MiB",
                growth <= MEMORY_BOUND_MIB,
            )
        )
    return checks


def _pools(now: dict[str, tuple[int, int]], later: dict[str, tuple[int, int]] | None) -> str | int:
    total = sum(b + q for b, q in now.values())
    if not total:
        return 0
    shown = ", ".join(f"{n}: {b} busy/{q} queued" for n, (b, q) in now.items() if b or q)
    if later is not None:
        after = sum(b + q for b, q in later.values())
        shown += f" (1 s later: {after})"
    return shown


def checks_table(checks: list[Check]) -> str:
    return table(
        ("check", "measured", "limit", "result"),
        [(c.name, c.value, c.limit, "pass" if c.ok else "**FAIL**") for c in checks],
    )


def examples(result: Result, per_kind: int = 2) -> str:
    """A few failing requests of each kind of violation, with tracebacks for bugs."""
    seen: collections.Counter[str] = collections.Counter()
    lines: list[str] = []
    for record in result.records:
        for violation in record.violations:
            # One kind per violation type (and per exception type for bugs).
            kind = ":".join(violation.split(":")[: 2 if violation.startswith("bug") else 1])
            seen[kind] += 1
            if seen[kind] > per_kind:
                continue
            plan = record.plan
            fault = plan.fault.describe() if plan.fault and record.injected else "no fault scripted"
            lines.append(
                f"- request {plan.index} ({plan.kind}, cancel={plan.cancel}, {fault}): {violation}"
            )
            if record.traceback:
                lines.append("  ```")
                lines.extend("  " + t for t in record.traceback.rstrip().splitlines()[-40:])
                lines.append("  ```")
    if not lines:
        return "(none)"
    totals = ", ".join(f"{k}: {n}" for k, n in seen.most_common())
    return "\n".join([f"violations by kind: {totals}", *lines])


def bug_types(result: Result) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for record in result.records:
        if record.outcome.startswith("BUG"):
            counts[record.outcome] += 1
    return dict(counts)
