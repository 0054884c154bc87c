"""``python -m orchestrator`` is the ``orchestrator`` command."""

from orchestrator.cli import entry_point

entry_point()
