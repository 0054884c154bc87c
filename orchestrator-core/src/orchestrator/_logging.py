"""The library's logging: silent by default, one switch for debugging output.

A library prints nothing unless the application asks (the :mod:`logging` convention): the
``orchestrator`` logger gets a :class:`logging.NullHandler`, so Python's last-resort handler
never writes its warnings to stderr. Retries and failovers are logged at ``INFO``, details at
``DEBUG``; an application sees them by configuring :mod:`logging` as usual, e.g.
``logging.getLogger("orchestrator").setLevel("INFO")`` with a handler.

For a quick look without touching code, ``ORCHESTRATOR_LOG=debug`` (or ``info``) attaches a
stderr handler at that level when :mod:`orchestrator` is imported, like ``OPENAI_LOG`` and
``LITELLM_LOG`` do for their libraries.
"""

from __future__ import annotations

import logging
import sys
import warnings

__all__ = ["ENV_VAR", "LEVELS", "attach_stderr_handler", "install", "level_from_env"]

#: The environment variable that turns on stderr logging.
ENV_VAR = "ORCHESTRATOR_LOG"
#: Its accepted values.
LEVELS: dict[str, int] = {"debug": logging.DEBUG, "info": logging.INFO}

ROOT = "orchestrator"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.Handler):
    """Writes to the *current* ``sys.stderr`` (the CLI and tests may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def level_from_env(value: str | None) -> int | None:
    """The level ``ORCHESTRATOR_LOG=value`` asks for; None when unset or empty.

    Raises ``ValueError`` (naming the variable and its values) for anything else.
    """
    if value is None or not value.strip():
        return None
    level = LEVELS.get(value.strip().lower())
    if level is None:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not a log level; use {ENV_VAR}=debug or {ENV_VAR}=info "
            "(or unset it for no log output)"
        )
    return level


def attach_stderr_handler(level: int, fmt: str = _FORMAT) -> logging.Handler:
    """Send the library's records at ``level`` and above to stderr; returns the handler
    (remove it with ``logging.getLogger("orchestrator").removeHandler(handler)``)."""
    logger = logging.getLogger(ROOT)
    handler = _StderrHandler()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    return handler


def env_handler() -> logging.Handler | None:
    """The handler ``ORCHESTRATOR_LOG`` attached, if any."""
    for handler in logging.getLogger(ROOT).handlers:
        if getattr(handler, "_orchestrator_env", False):
            return handler
    return None


def install(environ_value: str | None) -> None:
    """Called once on ``import orchestrator``: the NullHandler, and ORCHESTRATOR_LOG."""
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    try:
        level = level_from_env(environ_value)
    except ValueError as exc:
        warnings.warn(str(exc), RuntimeWarning, stacklevel=3)
        return
    if level is not None and env_handler() is None:
        handler = attach_stderr_handler(level)
        handler._orchestrator_env = True  # type: ignore[attr-defined]
