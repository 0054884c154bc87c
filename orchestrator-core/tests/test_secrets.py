"""Redaction of registered secrets: whole values, long leading parts, a bounded registry.

Issue 11, defects 11 (a gateway echoing the first characters of a key) and 12 (every
refreshed token kept forever, redaction cost growing with them).
"""

from __future__ import annotations

import logging
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from orchestrator import _secrets
from orchestrator._secrets import (
    MASK,
    PREFIX_LENGTH,
    PREFIX_SECRET_LENGTH,
    SecretRegistry,
    get_logger,
    reveals,
)
from orchestrator.config import ProviderConfig, Secret

TOKEN_CHARS = string.ascii_letters + string.digits + "._~+/=:-"
#: Keys as vendors issue them: long runs of token characters.
tokens = st.text(TOKEN_CHARS, min_size=PREFIX_SECRET_LENGTH, max_size=80)
#: Anything a message can hold around a secret (but the mask's own character).
texts = st.text(st.characters(blacklist_characters="*"), max_size=60)


def registry_of(*values: str) -> SecretRegistry:
    registry = SecretRegistry()
    for value in values:
        registry.register(value)
    return registry


@given(secret=tokens, before=texts, after=texts, data=st.data())
def test_no_leading_part_of_a_token_survives(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    shown = data.draw(st.integers(PREFIX_LENGTH, len(secret)), label="characters shown")
    out = registry_of(secret).redact(before + secret[:shown] + after)
    assert secret[:PREFIX_LENGTH] not in out
    assert not reveals(out, secret)
    assert MASK in out


@given(secret=st.text(st.characters(blacklist_characters="*"), min_size=4), before=texts,
       after=texts)  # fmt: skip
def test_no_whole_secret_survives(secret: str, before: str, after: str) -> None:
    out = registry_of(secret).redact(before + secret + after)
    assert secret not in out


@given(secret=tokens, text=texts)
def test_text_without_eight_characters_of_a_token_is_left_alone(secret: str, text: str) -> None:
    assume(secret[:PREFIX_LENGTH] not in text)
    assert registry_of(secret).redact(text) == text


@given(secret=st.text(min_size=4, max_size=40), text=texts)
def test_text_without_the_secret_is_left_alone(secret: str, text: str) -> None:
    assume(secret not in text)
    assume(_secrets._TOKEN.fullmatch(secret) is None or len(secret) < PREFIX_SECRET_LENGTH)
    assert registry_of(secret).redact(text) == text


@given(
    shared=st.text(TOKEN_CHARS, max_size=12),
    tails=st.lists(tokens, min_size=1, max_size=12, unique=True),
    others=st.lists(st.text(min_size=4, max_size=20), max_size=5),
    data=st.data(),
)
def test_many_secrets_sharing_beginnings(
    shared: str, tails: list[str], others: list[str], data: st.DataObject
) -> None:
    """Secrets that share their first characters (as one vendor's tokens do) are each
    masked, whole or from their eighth character on, wherever they appear."""
    secrets = [shared + tail for tail in tails]
    registry = registry_of(*secrets, *others)
    pieces = []
    for secret in secrets:
        shown = data.draw(st.integers(PREFIX_LENGTH, len(secret)))
        pieces += [data.draw(texts), secret[:shown]]
    out = registry.redact("".join(pieces))
    for secret in secrets:
        assert secret[:PREFIX_LENGTH] not in out


def test_a_gateway_echoing_twelve_characters_is_masked() -> None:
    key = "sk-proj-Qx7vT2mLp9RwZk4N8sHj"
    registry = registry_of(key)
    page = f"401: invalid key {key[:12]}... (request abc)"
    assert registry.redact(page) == "401: invalid key ***... (request abc)"
    assert registry.redact(f"cut body: {key[:20]}") == "cut body: ***"
    assert registry.redact(f"seven: {key[:7]}") == f"seven: {key[:7]}"  # below the threshold


def test_whole_only_values_are_not_masked_by_their_beginning() -> None:
    """A header or a JSON key file starts with common words: only the whole value counts."""
    header = "Bearer t1.9euelZqXk5OSkJqLk8iQmJCSyZqelO3rnpGZ"
    key_file = '{\n  "id": "ajeabc",\n  "private_key": "-----BEGIN PRIVATE KEY-----"\n}'
    registry = registry_of(header, key_file, "short-key")
    text = 'Bearer tokens and {\n  "id": 1} and short-ke'
    assert registry.redact(text) == text
    assert registry.redact(f"sent {header}!") == "sent ***!"


def test_longest_secret_wins_at_a_position() -> None:
    registry = registry_of("abcd", "abcd efgh", "abcdefghijklmnopqrstu")
    assert registry.redact("abcd efgh.") == "***."
    assert registry.redact("abcdX") == "***X"
    assert registry.redact("abcdefghijklZZ") == "***ZZ"
    assert registry.redact("abcdefgh ijk") == "*** ijk"  # eight characters of the token
    assert registry.redact("abcdefg ijk") == "***efg ijk"  # seven: only "abcd" is a secret


def test_pathologically_nested_secrets_still_redact() -> None:
    chain = ["a" * n + "!" for n in range(4, 1500)]  # each a prefix-sharing sibling
    registry = registry_of(*chain, "b" * 5000)
    assert registry.redact("x" + "a" * 700 + "!y") == "x***y"
    assert registry.redact("b" * 5000) == MASK


# -- a bounded registry, a matcher built once per change ------------------------------------


def test_ephemeral_values_are_bounded_and_lasting_ones_kept() -> None:
    registry = SecretRegistry(ephemeral_limit=100)
    registry.register("sk-lasting-key-000000000")
    for n in range(10_000):
        registry.register(f"t1.token-{n:08d}-refreshed", ephemeral=True)
    assert len(registry) == 101
    assert "sk-lasting-key-000000000" in registry
    assert "t1.token-00009999-refreshed" in registry
    assert "t1.token-00000000-refreshed" not in registry
    assert registry.redact("key sk-lasting-key-000000000") == "key ***"
    assert registry.redact("now t1.token-00009999-refreshed") == "now ***"


def test_a_value_registered_both_ways_is_lasting() -> None:
    registry = SecretRegistry(ephemeral_limit=2)
    registry.register("token-number-one", ephemeral=True)
    registry.register("token-number-one")
    registry.register("token-number-one", ephemeral=True)
    for n in range(5):
        registry.register(f"other-token-{n}", ephemeral=True)
    assert "token-number-one" in registry
    assert len(registry) == 3


def test_the_matcher_is_built_once_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = 0
    build = _secrets._Matcher.__init__

    def counting(self: _secrets._Matcher, values: list[str]) -> None:
        nonlocal builds
        builds += 1
        build(self, values)

    monkeypatch.setattr(_secrets._Matcher, "__init__", counting)
    registry = SecretRegistry()
    for n in range(50):
        registry.register(f"t1.token-{n:04d}", ephemeral=True)
    for _ in range(100):
        registry.redact("nothing here t1.token-0007")
    assert builds == 1  # fifty registrations, a hundred redactions: one build
    registry.register("t1.token-0003", ephemeral=True)  # already known: no rebuild
    registry.register("abc")  # too short to be a secret
    registry.redact("x")
    assert builds == 1


def test_secret_ephemeral_goes_to_the_bounded_part(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = SecretRegistry(ephemeral_limit=10)
    monkeypatch.setattr(_secrets, "_registry", registry)
    ProviderConfig(name="p", api_key="sk-config-key-kept-forever")
    for n in range(100):
        Secret(f"refreshed-token-{n:04d}", ephemeral=True)
    assert len(registry) == 11
    assert _secrets.redact("k=sk-config-key-kept-forever") == "k=***"
    logger = get_logger("orchestrator.test-secrets")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "t=%s", (
        "refreshed-token-0099",), None)  # fmt: skip
    assert logger.filter(record)
    assert record.getMessage() == "t=***"


def test_reveals_matches_what_redact_masks() -> None:
    key = "sk-contract-kit-9f3c2e71b5d04a68"
    assert reveals(f"key {key}", key)
    assert reveals(f"key {key[:12]}…", key)
    assert not reveals(f"key {key[:7]}", key)
    assert not reveals("Bearer x", "Bearer t1.9euelZqXk5OSkJqLk8iQmJ")
