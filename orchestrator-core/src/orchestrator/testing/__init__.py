"""Testing helpers for provider authors and for applications using the orchestrator.

- :class:`LoopbackServer` serves an ASGI app (a vendor emulator, a scripted fake) on a real
  loopback socket, over HTTP or HTTPS.
- :class:`ProviderContract` is the provider contract kit: subclass it in ~10 lines to run
  the standard tests against your provider (see :mod:`orchestrator.testing.contract`).
- :class:`FakeOpenAIServer` is a scriptable OpenAI-compatible chat API (a
  :class:`ScriptableApp`), the kit's default server.
- The pytest plugin (loaded automatically) adds the ``loopback_server``,
  ``fake_openai_server`` and ``plugin_registry`` fixtures.

Needs the ``testing`` extra: ``pip install "multi-llm-orchestrator-core[testing]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.lazy import lazy_exports
from orchestrator.testing.scripting import ScriptableApp, ScriptableModel
from orchestrator.testing.server import LoopbackServer

if TYPE_CHECKING:
    from orchestrator.testing.contract import ProviderContract, StandardTestRemovedError
    from orchestrator.testing.fake import FakeOpenAIServer

__all__ = [
    "LoopbackServer",
    "ScriptableApp",
    "ScriptableModel",
    "ProviderContract",
    "StandardTestRemovedError",
    "FakeOpenAIServer",
]

# Imported on first use: the kit imports pytest, and this package is imported by the pytest
# plugin that every project with multi-llm-orchestrator-core installed loads.
_LAZY = {
    "ProviderContract": "orchestrator.testing.contract",
    "StandardTestRemovedError": "orchestrator.testing.contract",
    "FakeOpenAIServer": "orchestrator.testing.fake",
}


__getattr__ = lazy_exports(__name__, _LAZY)
