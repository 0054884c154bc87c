"""``orchestrator metrics``: the endpoint it serves (scraped over loopback), its defaults,
and its error when orchestrator-otel is missing."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import orchestrator_otel.cli
from orchestrator import Router, cli
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator_otel.prometheus import PrometheusExporter

MOCK = '[providers.cli-m]\ntype = "mock"\n'


@pytest.mark.anyio
async def test_serve_health_checks_and_serves_the_breakers() -> None:
    router = Router(registry=PluginRegistry(entry_points=False))
    router.add_provider(MockProvider(MockConfig(name="cli-down", mode="server_error")))
    out = io.StringIO()
    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: orchestrator_otel.cli.serve(
                router,
                PrometheusExporter(),
                port=0,
                interval=0.01,
                out=out,
                task_status=task_status,
            )
        )
        assert out.getvalue() == f"Serving Prometheus metrics on http://127.0.0.1:{port}/metrics\n"
        async with httpx.AsyncClient() as client:
            state = None
            with anyio.fail_after(10):
                while state != 2.0:  # the failing health checks open the breaker
                    response = await client.get(f"http://127.0.0.1:{port}/metrics")
                    families = {f.name: f for f in text_string_to_metric_families(response.text)}
                    state = {
                        s.labels["orchestrator_provider"]: s.value
                        for s in families["orchestrator_breaker_state"].samples
                    }.get("cli-down")
                    await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    with pytest.raises(httpx.ConnectError):  # the server stopped with the command
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_the_command_defaults_to_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def run(router: Router, *, host: str, port: int, interval: float) -> int:
        seen.update(names=[p.config.name for p in router.providers], host=host, port=port)
        seen["interval"] = interval
        return 0

    monkeypatch.setattr(orchestrator_otel.cli, "run", run)
    config = tmp_path / "o.toml"
    config.write_text(MOCK, encoding="utf-8")
    assert cli.main(["metrics", "--config", str(config)]) == 0
    assert seen == {"names": ["cli-m"], "host": "127.0.0.1", "port": 9464, "interval": 30.0}
    assert cli.main(["metrics", "--config", str(config), "--port", "0", "--host", "::1"]) == 0
    assert (seen["host"], seen["port"]) == ("::1", 0)


def test_run_serves_until_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, float]] = []

    async def serve(router: Router, exporter: PrometheusExporter, **options: Any) -> None:
        assert isinstance(exporter, PrometheusExporter)
        calls.append((options["host"], options["port"], options["interval"]))

    monkeypatch.setattr(orchestrator_otel.cli, "serve", serve)
    router = Router(registry=PluginRegistry(entry_points=False))
    assert orchestrator_otel.cli.run(router, host="127.0.0.1", port=0, interval=5.0) == 0
    assert calls == [("127.0.0.1", 0, 5.0)]


def test_missing_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "orchestrator_otel.cli", None)  # import fails
    config = tmp_path / "o.toml"
    config.write_text(MOCK, encoding="utf-8")
    assert cli.main(["metrics", "--config", str(config)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "pip install orchestrator-otel" in err
    assert "`orchestrator metrics` needs the orchestrator-otel package" in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["metrics", "--help"])
    assert info.value.code == 0
    assert "127.0.0.1" in capsys.readouterr().out
