"""Secret values the library knows about, so it can keep them out of messages and logs.

Every credential that goes through :class:`orchestrator.config.Secret` is registered here;
:func:`redact` replaces each registered value (and its ``Basic``/``Bearer`` encodings, which
are the same string) with ``***``. Error classes and the library's loggers apply it.

What is masked
--------------
- Every occurrence of a registered value (at least :data:`MIN_LENGTH` characters).
- Every occurrence of a *leading part* of a token-shaped secret: for a value of at least
  :data:`PREFIX_SECRET_LENGTH` characters made only of token characters (letters, digits and
  ``._~+/=:-``, as in API keys, base64, JWTs and OAuth tokens), any run of its first
  :data:`PREFIX_LENGTH` or more characters — what a gateway's error page shows when it
  echoes ``sk-proj-AbCd1234…``, or a body cut in the middle of a key. Eight characters keeps
  false positives low (ordinary text rarely repeats eight characters of a random key), yet
  hides the shortest prefix worth anything to someone holding the rest. Values with spaces,
  quotes or braces (a ``Bearer …`` header, a JSON key file) are masked whole only: their
  first characters are common words or syntax; their token parts are registered on their own.
  A structured prefix shared by every key of a vendor (``t1.9euelZ…``) is masked too when a
  key of that vendor is registered: over-masking is the safe side.

Cost and size
-------------
Long-lived credentials (config keys) stay registered for the life of the process; values
registered with ``ephemeral=True`` (access tokens refreshed every few minutes) are kept in an
LRU of the :data:`EPHEMERAL_LIMIT` most recent, so a process refreshing tokens for months
keeps a bounded set. All values are compiled into one matcher (a regular expression over a
trie of the values, rebuilt on the first :func:`redact` after a change), so redacting costs
about the same with three secrets or a thousand: no per-call sorting or scanning per secret.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

__all__ = [
    "EPHEMERAL_LIMIT",
    "MASK",
    "MIN_LENGTH",
    "PREFIX_LENGTH",
    "PREFIX_SECRET_LENGTH",
    "RedactingFilter",
    "SecretRegistry",
    "get_logger",
    "redact",
    "register",
    "reveals",
]

MASK = "***"
#: Shorter strings are not registered: they would redact ordinary words.
MIN_LENGTH = 4
#: A token-shaped secret this long also has its leading parts masked...
PREFIX_SECRET_LENGTH = 16
#: ...from this many characters on.
PREFIX_LENGTH = 8
#: How many ephemeral values (refreshed tokens) are remembered, most recent first.
EPHEMERAL_LIMIT = 1024

_FEW = 16
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=:-]+")


def _prefix_masked(value: str) -> bool:
    """Whether ``value``'s leading parts are masked, not only the whole value."""
    return len(value) >= PREFIX_SECRET_LENGTH and _TOKEN.fullmatch(value) is not None


def reveals(text: str, secret: str) -> bool:
    """Whether ``text`` shows ``secret`` or as much of its beginning as :func:`redact` masks.

    The contract kit uses it to catch a provider that leaks a key, whole or partly, through a
    channel that does not redact (its own logger, an exception of its own).
    """
    if secret in text:
        return True
    return _prefix_masked(secret) and secret[:PREFIX_LENGTH] in text


def _trie_pattern(words: Sequence[str]) -> str:
    """A regex matching, at a position, the longest of ``words`` (sorted, unique) there.

    It is a compressed trie: shared beginnings are written once and an ``(?:...)?`` group
    makes a shorter word the fallback of the longer ones, so the regex engine tries one
    branch per distinct next character instead of every word in turn.
    """
    accepts = bool(words) and words[0] == ""
    rest = words[1:] if accepts else words
    branches = []
    for _, group in itertools.groupby(rest, key=lambda word: word[0]):
        members = list(group)
        # Sorted: what the first and the last share, all of them share.
        shared = members[0][: _common_length(members[-1], 0, members[0])]
        tail = _trie_pattern([word[len(shared) :] for word in members])
        branches.append(re.escape(shared) + tail)
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if accepts else body


def _common_length(text: str, start: int, value: str) -> int:
    """How many leading characters of ``value`` ``text`` repeats from ``start``."""
    if text.startswith(value, start):
        return len(value)
    low, high = 0, len(value)  # text repeats value[:low], not value[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if text.startswith(value[:middle], start):
            low = middle
        else:
            high = middle
    return low


class _Matcher:
    """The compiled form of a set of secrets (immutable; replaced when the set changes)."""

    def __init__(self, values: Iterable[str]) -> None:
        whole: set[str] = set()
        prefixed: dict[str, list[str]] = {}
        for value in values:
            if _prefix_masked(value):
                prefixed.setdefault(value[:PREFIX_LENGTH], []).append(value)
            else:
                whole.add(value)
        self.whole = frozenset(whole)
        #: Token-shaped secrets by their first PREFIX_LENGTH characters, sorted.
        self.prefixed = {anchor: sorted(group) for anchor, group in prefixed.items()}
        self.longest = {anchor: max(map(len, group)) for anchor, group in prefixed.items()}
        anchors = sorted(whole | set(prefixed))
        #: With a few secrets, ``in`` (a fast substring search) rules most texts out faster
        #: than the regex engine scans them.
        self.few = tuple(anchors) if len(anchors) <= _FEW else None
        try:
            self.pattern = re.compile(_trie_pattern(anchors))
        except (RecursionError, re.error, OverflowError):  # pathological nesting
            alternatives = sorted(anchors, key=len, reverse=True)
            self.pattern = re.compile("|".join(map(re.escape, alternatives)))

    def _extent(self, text: str, start: int, anchor: str) -> int:
        """How long the secret (or leading part of one) at ``start`` is."""
        length = len(anchor) if anchor in self.whole else 0
        group = self.prefixed.get(anchor[:PREFIX_LENGTH])
        if group:
            # The secret sharing the longest beginning with the text sits next to where
            # the text would sort among them.
            window = text[start : start + self.longest[anchor[:PREFIX_LENGTH]]]
            at = bisect.bisect_left(group, window)
            for value in group[max(at - 1, 0) : at + 1]:
                length = max(length, _common_length(text, start, value))
        return length

    def redact(self, text: str) -> str:
        if self.few is not None and not any(anchor in text for anchor in self.few):
            return text
        parts: list[str] = []
        done = 0  # text[:done] is in parts
        position = 0
        search = self.pattern.search
        while (found := search(text, position)) is not None:
            start = found.start()
            length = self._extent(text, start, found.group())
            if length < MIN_LENGTH:  # cannot happen for a matched anchor; stay safe
                position = start + 1
                continue
            parts.append(text[done:start])
            parts.append(MASK)
            done = position = start + length
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)


class SecretRegistry:
    """A set of secrets to redact: long-lived ones, plus a bounded LRU of ephemeral ones.

    The module functions use one process-wide instance; tests make their own.
    """

    def __init__(self, ephemeral_limit: int = EPHEMERAL_LIMIT) -> None:
        self.ephemeral_limit = ephemeral_limit
        self._lasting: set[str] = set()
        self._ephemeral: OrderedDict[str, None] = OrderedDict()
        self._matcher: _Matcher | None = None
        self._stale = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._lasting) + len(self._ephemeral)

    def __contains__(self, value: object) -> bool:
        return value in self._lasting or value in self._ephemeral

    def register(self, value: str, *, ephemeral: bool = False) -> None:
        """Remember ``value`` as a secret (ignored when too short to be one).

        ``ephemeral=True`` is for values that are replaced regularly (access tokens): only
        the :attr:`ephemeral_limit` most recently registered are kept. A value registered
        both ways is long-lived.
        """
        if len(value) < MIN_LENGTH or value in self._lasting:
            return
        with self._lock:
            if not ephemeral:
                self._ephemeral.pop(value, None)
                self._lasting.add(value)
                self._stale = True
            elif value in self._ephemeral:
                self._ephemeral.move_to_end(value)  # the same set: nothing to recompile
            else:
                self._ephemeral[value] = None
                while len(self._ephemeral) > self.ephemeral_limit:
                    self._ephemeral.popitem(last=False)
                self._stale = True

    def _current(self) -> _Matcher | None:
        if self._stale:
            with self._lock:
                if self._stale:
                    values = [*self._lasting, *self._ephemeral]
                    self._matcher = _Matcher(values) if values else None
                    self._stale = False
        return self._matcher

    def redact(self, text: str) -> str:
        """``text`` with every registered secret, and every long enough leading part of a
        token-shaped one, replaced by ``***``."""
        matcher = self._current()
        return text if matcher is None else matcher.redact(text)


_registry = SecretRegistry()


def register(value: str, *, ephemeral: bool = False) -> None:
    """Remember ``value`` as a secret; see :meth:`SecretRegistry.register`."""
    _registry.register(value, ephemeral=ephemeral)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret (and long leading parts) masked."""
    return _registry.redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts registered secrets from the formatted message and
    from the traceback of an exception logged with it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if len(_registry):
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and not record.exc_text:
                # A third-party exception (httpx's, say) may quote a credential: format the
                # traceback here, redacted, so handlers print this text instead.
                record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        return True


_FORMATTER = logging.Formatter()


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A library logger with the redacting filter attached."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
