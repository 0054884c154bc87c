"""The faults a soak injects, through each emulator's scripting API.

A :class:`Fault` is drawn from the run's seeded generator when a request is planned and
scripted on its backend just before that request starts. Emulators queue scripted faults:
the next matching call meets it, whichever request that is (at concurrency 50, often
another one) — which is how faults reach a real service too.

Connect refused is not scripted here: the soak stops a server and restarts it mid-run
(:meth:`soak.world.World.outage`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from orchestrator_gigachat.emulator import ExpireTokens, Stall, WrongShape
from soak.world import Backend

#: The scripted faults, in the order tables show them.
NAMES = (
    "429 + Retry-After",
    "429",
    "5xx",
    "reset mid-body",
    "slow first byte",
    "truncated stream",
    "malformed line",
    "token expiry",
    "wrong-shape JSON",
)

#: Valid JSON of the wrong shape: a GigaChat body (plain call) or SSE event (stream).
GIGACHAT_SHAPES: tuple[Any, ...] = (
    {"choices": [None]},
    {"choices": []},
    {"choices": "text"},
    {"choices": [{"delta": "text", "message": "text"}]},
    {"choices": [{"delta": {"content": 5}, "message": {"content": 5}}]},
    {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": "n/a"}},
    [],
    "text",
    None,
)
#: ... a YandexGPT body (plain call): none of them carries a usable answer.
YANDEX_PLAIN_SHAPES: tuple[Any, ...] = (
    {"result": {"alternatives": [None]}},
    {"result": "text"},
    {"result": {"alternatives": [{"message": None}]}},
    {"result": {"alternatives": "text"}},
    [],
    "text",
)
#: ... and a YandexGPT NDJSON line (stream).
YANDEX_STREAM_SHAPES: tuple[Any, ...] = (
    *YANDEX_PLAIN_SHAPES,
    {
        "result": {
            "alternatives": [{"message": {"text": 5}, "status": "ALTERNATIVE_STATUS_PARTIAL"}]
        }
    },
    {"result": {"alternatives": [{"message": {"text": "x"}, "status": 7}]}},
)

#: Seconds of a slow first byte: within every timeout, past the first-chunk timeout, past
#: the attempt timeout, past the request deadline.
STALLS = (0.05, 0.2, 1.2, 2.0, 6.0)
STALL_WEIGHTS = (30, 30, 15, 15, 3)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted fault: what, on which backend, with which parameters."""

    name: str
    backend: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name} on {self.backend}" + (f" ({shown})" if shown else "")


def draw(rng: random.Random, backends: list[Backend]) -> Fault:
    """A random fault on a random backend."""
    backend = rng.choice(backends)
    name = rng.choice(NAMES)
    params: dict[str, Any] = {}
    if name == "429 + Retry-After":
        # 1.0 s is longer than backoff_max: the router fails over instead of waiting.
        params["retry_after"] = rng.choice((0.05, 0.1, 0.2, 1.0))
    elif name == "5xx":
        params["status"] = rng.choice((500, 502, 503, 504))
        params["times"] = rng.randint(1, 4)
    elif name in ("reset mid-body", "truncated stream", "malformed line"):
        params["after_chunks"] = rng.randint(0, 3)
    elif name == "slow first byte":
        params["seconds"] = rng.choices(STALLS, STALL_WEIGHTS)[0]
    elif name == "wrong-shape JSON":
        params["stream"] = rng.random() < 0.5
        params["after_chunks"] = rng.randint(0, 2)
        if backend.vendor == "gigachat":
            shapes = GIGACHAT_SHAPES
        else:
            shapes = YANDEX_STREAM_SHAPES if params["stream"] else YANDEX_PLAIN_SHAPES
        params["shape"] = rng.randrange(len(shapes))
    return Fault(name, backend.name, params)


class Injector:
    """Scripts a planned fault only when its backend has served enough calls since the last.

    Faults are planned per request, but a real service fails a share of the calls it
    serves. The difference matters while every breaker is open: no call reaches a backend,
    yet requests go on being planned (and refused at once), and scripting each one's fault
    would pile up a queue that meets every half-open probe and keeps the breakers open for
    the rest of the run. So after each fault a backend must serve a random number of calls
    (``mean_gap`` on average) before the next one is scripted there; under normal load the
    gap rarely binds (a backend is planned a fault every ~15 requests).
    """

    def __init__(self, seed: int, mean_gap: float = 8.0) -> None:
        self._rng = random.Random(seed)
        self._mean_gap = mean_gap
        self._next: dict[str, int] = {}

    def __call__(self, fault: Fault, backend: Backend) -> bool:
        """Script ``fault`` if due; whether it was scripted."""
        served = backend.request_count
        if served < self._next.get(backend.name, 0):
            return False
        gap = 1 + int(self._rng.expovariate(1 / self._mean_gap))
        self._next[backend.name] = served + gap
        inject(fault, backend)
        return True


def inject(fault: Fault, backend: Backend) -> None:
    """Script ``fault`` on ``backend``'s emulator."""
    app, p = backend.app, fault.params
    giga = backend.vendor == "gigachat"
    name = fault.name
    if name == "429 + Retry-After":
        app.fail_next(429, retry_after=p["retry_after"])
    elif name == "429":
        app.fail_next(429)
    elif name == "5xx":
        app.fail_next(p["status"], times=p["times"])
    elif name == "reset mid-body":
        app.break_next_stream(after_chunks=p["after_chunks"])
    elif name == "slow first byte":
        if giga:
            app.script(Stall(p["seconds"]))
        else:
            app.stall_next(p["seconds"])
    elif name == "truncated stream":
        app.cut_next_stream(after_chunks=p["after_chunks"])
    elif name == "malformed line":
        app.malform_next_stream(after_chunks=p["after_chunks"])
    elif name == "token expiry":
        if giga:
            app.script(ExpireTokens())
        else:
            app.expire_iam_tokens()
    elif name == "wrong-shape JSON":
        if giga:
            app.script(WrongShape(GIGACHAT_SHAPES[p["shape"]], p["after_chunks"]))
        elif p["stream"]:
            app.wrong_shape_next_stream(
                YANDEX_STREAM_SHAPES[p["shape"]], after_chunks=p["after_chunks"]
            )
        else:
            app.wrong_shape_next(YANDEX_PLAIN_SHAPES[p["shape"]])
    else:  # pragma: no cover - NAMES and this function change together
        raise ValueError(f"unknown fault {name!r}")
