"""Testing helpers for provider authors and for applications using the orchestrator.

- :class:`LoopbackServer` serves an ASGI app (a vendor emulator, a scripted fake) on a real
  loopback socket, over HTTP or HTTPS.

Needs the ``testing`` extra: ``pip install "orchestrator-core[testing]"``.
"""

from __future__ import annotations

from orchestrator.testing.server import LoopbackServer

__all__ = ["LoopbackServer"]
