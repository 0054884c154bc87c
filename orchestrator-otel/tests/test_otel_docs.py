"""docs/observability.md: its Python blocks run as written, as one story, in a fresh
interpreter (they install global OpenTelemetry providers), exporting over OTLP/HTTP to a
stand-in collector on loopback that records what it receives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


class Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, int]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Collector.received.append((self.path, len(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_page_has_its_examples() -> None:
    assert len(BLOCKS) >= 4
    assert any("OTLPSpanExporter()" in block for block in BLOCKS)


@pytest.mark.slow
def test_the_examples_run_and_export(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.received = []
    try:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "ORCHESTRATOR_"))
        }
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
        result = subprocess.run(
            [sys.executable, "-c", "\n".join(BLOCKS)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert "answered by backup" in result.stdout
    assert re.search(r"http://127\.0\.0\.1:\d+/metrics", result.stdout)
    paths = {path for path, size in Collector.received if size > 0}
    assert {"/v1/traces", "/v1/metrics"} <= paths, Collector.received
