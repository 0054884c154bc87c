"""``python -m orchestrator_gateway hash-key``: print the SHA-256 to put in
``[gateway.keys.NAME] key_sha256`` for a key read from stdin (never from the command line,
where it would land in the shell's history)."""

from __future__ import annotations

import sys

from orchestrator_gateway.config import hash_key


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["hash-key"]:
        print("usage: python -m orchestrator_gateway hash-key < keyfile", file=sys.stderr)
        return 2
    key = sys.stdin.readline().strip()
    if not key:
        print("no key on stdin", file=sys.stderr)
        return 1
    print(hash_key(key))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
