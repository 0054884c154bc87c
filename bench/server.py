"""The loopback side: both vendor emulators on uvicorn, in their own process (so the server
does not share the client's GIL). Prints one JSON line (base URLs, a GigaChat access token)
and serves until its stdin closes.

    python bench/server.py     # used by the benchmark; the parent holds its stdin
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import raise_fd_limit

from orchestrator.testing import LoopbackServer


def serve_forever() -> None:
    import logging

    # Clients that drop a connection mid-answer make asyncio log each failed send.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    from orchestrator_gigachat.emulator import GigaChatEmulator
    from orchestrator_yandexgpt.emulator import YandexGPTEmulator

    raise_fd_limit()
    gigachat = GigaChatEmulator(tokens_per_chunk=1, token_ttl=24 * 3600.0)
    with LoopbackServer(gigachat) as giga, LoopbackServer(YandexGPTEmulator()) as yandex:
        info = {
            "GigaChat": f"{giga.base_url}",
            "GigaChat_token": gigachat.issue_token(),
            "YandexGPT": yandex.base_url,
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # until the parent closes our stdin


@contextmanager
def emulators() -> Iterator[dict[str, Any]]:
    """Start the server process; yields its JSON line; stops it on exit."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


if __name__ == "__main__":
    serve_forever()
