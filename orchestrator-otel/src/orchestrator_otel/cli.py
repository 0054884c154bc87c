"""``orchestrator metrics``: a Prometheus endpoint for the configured providers.

The command builds the router from the configuration (as ``orchestrator health`` does), runs
its health checks every ``--interval`` seconds (they move the circuit breakers) and serves
``/metrics`` on ``--host:--port``: breaker states and budgets left. Request metrics come from
the process that routes the requests: mount a
:class:`~orchestrator_otel.prometheus.PrometheusExporter` there.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, TextIO

import anyio

from orchestrator_otel._watch import watch
from orchestrator_otel.prometheus import DEFAULT_HOST, DEFAULT_PORT, PrometheusExporter

if TYPE_CHECKING:
    from orchestrator import Router

__all__ = ["run", "serve"]


async def serve(
    router: Router,
    exporter: PrometheusExporter,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    interval: float = 30.0,
    out: TextIO | None = None,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``exporter`` on ``host:port`` and health-check ``router`` every ``interval``
    seconds until cancelled; reports the bound port through ``task_status``."""
    watch(router, "default")
    server, thread = exporter.start_http_server(port, host)
    try:
        bound = int(server.server_port)
        shown = f"[{host}]" if ":" in host else host
        print(f"Serving Prometheus metrics on http://{shown}:{bound}/metrics", file=out, flush=True)
        task_status.started(bound)
        async with router:
            await router.run_health_checks(interval)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run(router: Router, *, host: str, port: int, interval: float) -> int:
    """The command's body: serve until Ctrl-C (raised to the caller)."""
    exporter = PrometheusExporter()
    anyio.run(
        partial(serve, router, exporter, host=host, port=port, interval=interval, out=sys.stdout)
    )
    return 0
