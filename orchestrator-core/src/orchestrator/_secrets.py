"""Secret values the library knows about, so it can keep them out of messages and logs.

Every credential that goes through :class:`orchestrator.config.Secret` is registered here;
:func:`redact` replaces each registered value (and its ``Basic``/``Bearer`` encodings, which
are the same string) with ``***``. Error classes and the library's loggers apply it.
"""

from __future__ import annotations

import logging
import threading

_MIN_LENGTH = 4  # shorter strings would redact ordinary words
_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "***"


def register(value: str) -> None:
    """Remember ``value`` as a secret (ignored when too short to be one)."""
    if len(value) >= _MIN_LENGTH and value not in _secrets:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    if not _secrets:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts registered secrets from the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A library logger with the redacting filter attached."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
